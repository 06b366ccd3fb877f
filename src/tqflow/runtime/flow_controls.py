"""A flow job's limits and fair share, per run: the plan's `limit NAME by EXPR` and `fair by EXPR weight EXPR`
become the same options a standalone job carries (`lim`, `fk`, `fw`: runtime/limits.py, lua/limits.lua,
lua/fair.lua), so one enforcement serves both.

The keys are evaluated when the run is submitted, from its parameters and run fields. A key that reads an
upstream job's output (`by fetch.out.customer`) is not known yet: it is left as an expression tree, with
what is known already folded in, under `limx` / `fkx` / `fwx`, and the Lua scripts finish it when the job
becomes ready (lua/flow_keys.lua evaluates the forms such a key can take: literals, outputs, fields,
indexes, `+` and f-strings).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tqflow.errors import PlanValueError
from tqflow.plan.model import ExprTree, FlowPlan, JobPlan
from tqflow.runtime.expressions import Environment, ExpressionError, evaluate
from tqflow.runtime.limits import check_consistent, definition, fair_share, key_text

LATE = ("out", "var")  # forms only known when the job is ready


def _late(tree: Any) -> bool:
    if isinstance(tree, dict):
        return any(k in LATE or _late(v) for k, v in tree.items())
    if isinstance(tree, list):
        return any(_late(v) for v in tree)
    return False


def fold(tree: ExprTree, env: Environment) -> ExprTree:
    """`tree` with every part that does not read an upstream output evaluated to a literal."""
    if not _late(tree):
        return {"lit": evaluate(tree, env)}
    if "op" in tree:
        return {"op": tree["op"], "args": [fold(a, env) for a in tree["args"]]}
    ((kind, value),) = tree.items()
    if kind in ("attr",):
        return {"attr": [fold(value[0], env), value[1]]}
    if kind == "index":
        return {"index": [fold(value[0], env), fold(value[1], env)]}
    if kind == "fstr":
        return {"fstr": [p if isinstance(p, str) else fold(p, env) for p in value]}
    return tree


def check_flow(flow: FlowPlan) -> None:
    """Every limiter a job names is defined, once (LimiterConflict or ValueError otherwise)."""
    check_consistent(flow.limiters.values(), f" in flow `{flow.name}`")
    for name, job in flow.jobs.items():
        for use in job.limits:
            if use.limiter not in flow.limiters:
                raise PlanValueError(
                    f"job `{name}` of flow `{flow.name}` uses limiter `{use.limiter}`, not defined"
                )


def job_controls(flow: FlowPlan, job: JobPlan, env: Environment) -> dict[str, Any]:
    """The options (`lim`, `fk`, `fw`, and `limx`/`fkx`/`fwx` for what is known later) of one job of a run."""
    out: dict[str, Any] = {}
    lim: list[dict[str, Any]] = []
    later: list[list[Any]] = []
    for use in job.limits:
        d = definition(flow.limiters[use.limiter])
        if use.by is not None:
            tree = fold(use.by, env)
            if "lit" in tree:
                d["k"] = _key(tree["lit"], use.limiter)
            else:
                later.append([len(lim), tree])
        lim.append(d)
    if lim:
        out["lim"] = lim
    if later:
        out["limx"] = later
    if job.fair is not None:
        key = fold(job.fair.key, env)
        weight = fold(job.fair.weight, env) if job.fair.weight is not None else None
        if "lit" in key and (weight is None or "lit" in weight):
            fk, fw = fair_share(_key(key["lit"], "fair by"), None if weight is None else weight["lit"])
            out["fk"] = fk
            if fw is not None and fw != 1:
                out["fw"] = fw
        else:
            out["fkx"] = key
            if weight is not None:
                out["fwx"] = weight
    return out


def _key(value: Any, what: str) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    try:
        return key_text(value, what)
    except ValueError as err:
        raise ExpressionError(str(err)) from None


def for_item(opts: Mapping[str, Any], env: Environment) -> str | None:
    """A fan-out item's options: the parent's, with the keys left for later (`limx`, `fkx`, `fwx`: they may
    read the item, `var`) evaluated in the item's environment; None when the parent has no such key (the
    items then share the parent's options)."""
    if not any(k in opts for k in ("limx", "fkx", "fwx")):
        return None
    out = dict(opts)
    if "limx" in out:
        lim = [dict(d) for d in opts["lim"]]
        for index, tree in out.pop("limx"):
            lim[index]["k"] = _key(evaluate(tree, env), lim[index]["n"])
        out["lim"] = lim
    if "fkx" in out:
        key = _key(evaluate(out.pop("fkx"), env), "fair by")
        weight = evaluate(out.pop("fwx"), env) if "fwx" in out else None
        fk, fw = fair_share(key, weight)
        out["fk"] = fk
        if fw is not None and fw != 1:
            out["fw"] = fw
    return json.dumps(out, separators=(",", ":"))


def with_controls(opts: str, controls: Mapping[str, Any]) -> str:
    """A job's options JSON with its limits and fair share added."""
    if not controls:
        return opts
    merged = {**(json.loads(opts) if opts else {}), **controls}
    return json.dumps(merged, separators=(",", ":"))
