"""Flow control in the Python API: named rate and concurrency limiters, and the keys jobs take them by.

```python
api = Limiter("api", rate=Rate(100, per="s", burst=20))   # 100 admissions a second, bursts of 20
db = Limiter("db", concurrency=3)                         # 3 jobs running at once
@task(limit=db)                                           # every job of the task
async def report(day: str) -> None: ...
await client.enqueue(call_api, customer="c7", limit=api.by("c7"))  # one bucket per customer
```

A limiter is known by its name: every job that names it shares its buckets, whatever its task or flow
(the flow language's `limiter NAME = …` is the same thing: `LimiterPlan`). A job carries its limiters'
definitions in its options (`lim`, see `wire`), so the Lua scripts enforce them without a registry
(lua/limits.lua). Two different definitions of one name in one publish (a worker's tasks, a deployed
plan) are an error (`LimiterConflict`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tqflow.errors import ClientError, UsageError, UsageTypeError
from tqflow.plan.durations import Duration, to_ms
from tqflow.plan.model import LimiterPlan
from tqflow.runtime.store.keys import check_part

PERIODS = {"s": 1000, "m": 60_000, "h": 3_600_000}
MAX_KEY = 200
_CONTROL = re.compile("[\x00-\x1f\x7f]")  # ASCII's control characters


class LimiterConflict(ClientError, ValueError):
    """One limiter name with two different definitions."""


@dataclass(frozen=True)
class Rate:
    """`count` admissions per `per` ("s", "m", "h" or a duration such as "10s"), in bursts of at most
    `burst` (default: `count`): a token bucket, refilled continuously, on Redis' own clock."""

    count: int
    per: Duration = "s"
    burst: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise UsageError(f"a rate's count must be a positive integer, got {self.count!r}")
        if self.burst is not None and (
            isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1
        ):
            raise UsageError(f"a rate's burst must be a positive integer, got {self.burst!r}")
        if self.period_ms <= 0:
            raise UsageError(f"a rate's period must be longer than 0, got {self.per!r}")

    @property
    def period_ms(self) -> int:
        if isinstance(self.per, str) and self.per in PERIODS:
            return PERIODS[self.per]
        return to_ms(self.per, "rate period")


@dataclass(frozen=True)
class Limiter:
    """A named limit: `rate=Rate(…)` or `concurrency=N` (jobs running at once), one per key."""

    name: str
    rate: Rate | None = None
    concurrency: int | None = None

    def __post_init__(self) -> None:
        check_part("limiter name", self.name)
        if "|" in self.name:
            raise UsageError(f"limiter name {self.name!r} must not contain '|'")
        if (self.rate is None) == (self.concurrency is None):
            raise UsageError(f"limiter {self.name!r} needs exactly one of rate=Rate(...) or concurrency=N")
        if self.concurrency is not None and (
            isinstance(self.concurrency, bool)
            or not isinstance(self.concurrency, int)
            or self.concurrency < 1
        ):
            raise UsageError(
                f"limiter {self.name!r}: concurrency must be a positive integer, got {self.concurrency!r}"
            )

    def by(self, key: str | int) -> Limit:
        """This limiter's bucket (or semaphore) for one key, e.g. a customer id."""
        return Limit(self, key_text(key, self.name))

    @property
    def plan(self) -> LimiterPlan:
        if self.rate is not None:
            return LimiterPlan(
                name=self.name,
                kind="rate",
                rate=self.rate.count,
                period_ms=self.rate.period_ms,
                burst=self.rate.burst,
            )
        return LimiterPlan(name=self.name, kind="concurrency", limit=self.concurrency or 0)

    @classmethod
    def from_plan(cls, plan: LimiterPlan) -> Limiter:
        if plan.kind == "rate":
            return cls(plan.name, rate=Rate(plan.rate, f"{plan.period_ms}ms", plan.burst))
        return cls(plan.name, concurrency=plan.limit)


@dataclass(frozen=True)
class Limit:
    """A limiter taken by one key ('' = the limiter's one shared bucket)."""

    limiter: Limiter
    key: str = ""


LimitLike = Limiter | Limit
LimitArg = LimitLike | Sequence[LimitLike]


def key_text(key: object, limiter: str) -> str:
    """A limit key as stored: a string or an integer, at most 200 characters."""
    if isinstance(key, bool) or not isinstance(key, str | int):
        raise UsageError(f"the key of limiter {limiter!r} must be a string or an integer, got {key!r}")
    text = str(key)
    if len(text) > MAX_KEY:
        raise UsageError(
            f"the key of limiter {limiter!r} is {len(text)} characters long; the limit is {MAX_KEY}"
        )
    if _has_control(text):
        raise UsageError(
            f"the key of limiter {limiter!r} has a control character (tab, newline, ...): {text!r}"
        )
    return text


def _has_control(text: str) -> bool:
    """A tab or a newline would split the lines of a job's held slots (its `lh`: "MEMBER<tab>LIMIT" a
    line, lua/limits.lua), and the slot would not be given back at the job's end."""
    return _CONTROL.search(text) is not None


def limits_of(value: LimitArg | None) -> tuple[Limit, ...] | None:
    """`limit=` as given (a limiter, a limiter.by(key), or a list of them), as Limits; None when not given.
    One limiter twice in one job is refused (it could never be admitted by a concurrency of 1)."""
    if value is None:
        return None
    items = [value] if isinstance(value, Limiter | Limit) else list(value)
    out: list[Limit] = []
    for item in items:
        if isinstance(item, Limiter):
            item = Limit(item)
        if not isinstance(item, Limit):
            raise UsageTypeError(f"limit= takes Limiter or Limiter.by(key) values, got {type(item).__name__}")
        out.append(item)
    check_consistent(item.limiter.plan for item in out)
    names = [item.limiter.name for item in out]
    for name in names:
        if names.count(name) > 1:
            raise UsageError(f"limiter {name!r} is given twice to one job")
    return tuple(out)


def fair_share(key: object, weight: object) -> tuple[str | None, float | None]:
    """`fair_key=` and `weight=` checked: a string or integer key (at most 200 characters) and a positive
    number; a weight without a key is refused (it would weigh nothing)."""
    if key is None:
        if weight is not None:
            raise UsageError("weight= is the weight of a fair_key=; give both")
        return None, None
    if isinstance(key, bool) or not isinstance(key, str | int):
        raise UsageError(f"fair_key must be a string or an integer, got {key!r}")
    text = str(key)
    if not text or len(text) > MAX_KEY:
        raise UsageError(f"fair_key must be 1-{MAX_KEY} characters, got {len(text)}")
    if _has_control(text):
        raise UsageError(f"fair_key has a control character (tab, newline, ...): {text!r}")
    if weight is None:
        return text, None
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0 or weight > 1e6:
        raise UsageError(f"weight must be a positive number (at most 1e6), got {weight!r}")
    return text, float(weight)


def definition(plan: LimiterPlan) -> dict[str, Any]:
    """A limiter's definition as the Lua scripts read it (without the key)."""
    if plan.kind == "concurrency":
        if plan.limit < 1:
            raise UsageError(f"limiter {plan.name!r}: concurrency({plan.limit}) can never admit a job")
        return {"n": plan.name, "c": plan.limit}
    if plan.rate < 1 or plan.period_ms < 1 or (plan.burst is not None and plan.burst < 1):
        raise UsageError(
            f"limiter {plan.name!r}: a rate of {plan.rate} (burst {plan.burst}) can never admit a job"
        )
    d: dict[str, Any] = {"n": plan.name, "r": plan.rate, "p": plan.period_ms}
    if plan.burst is not None:
        d["b"] = plan.burst
    return d


def wire(limits: Iterable[tuple[LimiterPlan, str]]) -> list[dict[str, Any]]:
    """The `lim` option: one {n, k, c} or {n, k, r, p[, b]} per (limiter, key)."""
    out = []
    for plan, key in limits:
        d = definition(plan)
        if key:
            d["k"] = key
        out.append(d)
    return out


def wire_of(limits: Sequence[Limit]) -> list[dict[str, Any]]:
    return wire((item.limiter.plan, item.key) for item in limits)


def check_consistent(plans: Iterable[LimiterPlan], where: str = "") -> dict[str, LimiterPlan]:
    """The limiters by name; LimiterConflict when one name has two definitions."""
    seen: dict[str, LimiterPlan] = {}
    for plan in plans:
        other = seen.setdefault(plan.name, plan)
        if other != plan:
            raise LimiterConflict(
                f"limiter {plan.name!r} has two definitions{where}: {describe(other)} and {describe(plan)}"
            )
    return seen


def describe(plan: LimiterPlan) -> str:
    if plan.kind == "concurrency":
        return f"concurrency({plan.limit})"
    burst = f", burst={plan.burst}" if plan.burst is not None else ""
    return f"rate({plan.rate} per {plan.period_ms} ms{burst})"


def plan_of_wire(d: Mapping[str, Any]) -> LimiterPlan:
    """A `lim` entry (or a definition the scripts stored) back as a LimiterPlan."""
    if "c" in d:
        return LimiterPlan(name=str(d["n"]), kind="concurrency", limit=int(d["c"]))
    burst = d.get("b")
    return LimiterPlan(
        name=str(d["n"]),
        kind="rate",
        rate=int(d["r"]),
        period_ms=int(d["p"]),
        burst=None if burst is None else int(burst),
    )


def definitions_json(plans: Mapping[str, LimiterPlan]) -> dict[str, str]:
    """name -> canonical definition JSON, as the limiter registry (`{ns}:limiters`) holds them."""
    return {name: json.dumps(definition(plan), sort_keys=True) for name, plan in plans.items()}
