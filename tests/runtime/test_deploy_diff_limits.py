"""`tqc deploy`'s diff names what a new version changes in a flow's limits and fair share: a job's
`limit`/`fair` settings and the limiters' definitions (computed from two compiled plans, no Redis)."""

from __future__ import annotations

from tqflow.cli.flow_commands import render_diff
from tqflow.compiler import compile_source
from tqflow.dsl.diagnostics import render_all
from tqflow.plan import FlowPlan
from tqflow.runtime.deployments import diff_flows

from helpers import source

HEAD = "use sample_tasks as t\n"


def flow(text: str) -> FlowPlan:
    result = compile_source(source(HEAD + text, "shop.tqflow"))
    assert result.plan is not None, render_all(result.diagnostics)
    return result.plan.flows["f"]


def test_changed_limits_fair_share_and_limiter_definitions_are_listed() -> None:
    old = flow(
        "limiter api = rate(10/s, burst=20)\nlimiter db = concurrency(3)\n"
        "flow f {\n  params { c: Str }\n  job a = t.source(n=1) { limit api by params.c; limit db }\n}\n"
    )
    new = flow(
        "limiter api = rate(600/m)\nlimiter db = concurrency(3)\n"
        "flow f {\n  params { c: Str }\n"
        "  job a = t.source(n=1) { limit api by params.c; fair by params.c }\n}\n"
    )
    diff = diff_flows(old, new, 1, 0)
    assert not diff.unchanged
    (limits, fair) = diff.changed["a"]
    assert limits.startswith("limits: ") and fair == 'fair: null -> {"key": {"param": "c"}, "weight": null}'
    assert diff.changed["(flow)"] == [
        "limiter shop.api: rate(10/1s, burst=20) -> rate(600/1m)",
        "limiter shop.db: concurrency(3) -> none",  # no job uses it any more
    ]
    shown = render_diff(diff)
    assert "  ~ (flow): limiter shop.api: rate(10/1s, burst=20) -> rate(600/1m)" in shown
    assert diff_flows(new, new, 2, 0).changed == {}
