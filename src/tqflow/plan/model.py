"""The plan: the compiler's output and the only thing the runtime reads from it.

A plan is canonical JSON (sorted keys, no whitespace) with a versioned schema; its id is the
SHA-256 of those bytes. Expressions are small JSON trees (see `runtime.expressions`), never code.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tqflow.errors import PlanValueError
from tqflow.plan.priorities import Priority

PLAN_SCHEMA = "tqflow.plan/1"
DEFAULT_PRIORITY = Priority.NORMAL.label  # a job without a priority: its name, as the plan stores names
DEFAULT_QUEUE = "default"

ExprTree = dict[str, Any]
JITTERS = ("none", "full", "equal")  # or a percentage, "10%"


def check_attempts(attempts: int) -> int:
    """`attempts` counts every try, the first included: at least 1."""
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise PlanValueError(
            f"attempts counts every try including the first: it must be at least 1, got {attempts!r}"
        )
    return attempts


def check_jitter(jitter: str) -> str:
    """`none`, `full`, `equal`, or a percentage between 0% and 100% (`10%`)."""
    if jitter in JITTERS:
        return jitter
    try:
        percent = float(jitter[:-1]) if jitter.endswith("%") else None
    except ValueError:
        percent = None
    if percent is None:
        raise PlanValueError(f"jitter {jitter!r} must be none, full, equal or a percentage like '10%'")
    if not 0 <= percent <= 100:
        raise PlanValueError(f"jitter {jitter!r}: a jitter percentage is between 0% and 100%")
    return jitter


def check_ms(value: int, what: str) -> int:
    if value < 0:
        raise PlanValueError(f"{what} must not be negative, got {value} ms")
    return value


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Memo:
    """Values computed from frozen plan objects, kept by the object's identity: a bounded cache that holds
    the objects it has an entry for (so no other object can take an id while its entry is there). A plan is
    frozen, so what is computed from one stays true; a 1,000-job flow's id (its canonical JSON's SHA-256)
    costs ~20 ms, its run records ~10 ms, and a client starts many runs of the same plan object."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.items: dict[int, tuple[object, Any]] = {}

    def get(self, obj: object, make: Any) -> Any:
        hit = self.items.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        value = make(obj)
        if len(self.items) >= self.size:
            self.items.pop(next(iter(self.items)), None)
        self.items[id(obj)] = (obj, value)
        return value


_FLOW_IDS = Memo()


class RetryPlan(_Frozen):
    """How a failed attempt is retried. `attempts` counts every try, the first included.

    `rules` (from the block form `retry { on X -> policy, attempts=N; never Y }`) choose a policy by the
    exception raised: the first rule whose `on` names the exception's class (or a base class, by qualified
    name `module.Class`) applies; `never` lists exceptions that are not retried at all. The fields above the
    rules are the policy for exceptions no rule names.
    """

    kind: Literal["none", "fixed", "exponential", "schedule"] = "none"
    attempts: int = 1
    delay_ms: int = 0  # fixed delay, or the base of an exponential backoff
    factor: float = 2.0
    max_delay_ms: int | None = None
    jitter: str = "none"  # none | full | equal | "10%"
    schedule_ms: list[int] = Field(default_factory=list)
    rules: list[RetryRule] = Field(default_factory=list)
    never: list[str] = Field(default_factory=list)  # qualified exception names

    # The rules of a policy live here, once: the compiler (compiler/retry.py) and the Python API
    # (runtime/policies.py) build RetryPlans and report what these raise.
    @field_validator("attempts", mode="before")  # before: `True` is not a count
    @classmethod
    def _attempts(cls, value: int) -> int:
        return check_attempts(value)

    @field_validator("jitter")
    @classmethod
    def _jitter(cls, value: str) -> str:
        return check_jitter(value)

    @field_validator("delay_ms", "max_delay_ms")
    @classmethod
    def _delay(cls, value: int | None) -> int | None:
        return None if value is None else check_ms(value, "a retry delay")

    @field_validator("schedule_ms")
    @classmethod
    def _schedule(cls, value: list[int]) -> list[int]:
        return [check_ms(ms, "a retry delay") for ms in value]

    @field_validator("factor")
    @classmethod
    def _factor(cls, value: float) -> float:
        if not value > 0:
            raise PlanValueError(f"an exponential factor must be greater than 0, got {value}")
        return value

    @model_validator(mode="after")
    def _schedule_has_delays(self) -> RetryPlan:
        if self.kind == "schedule" and not self.schedule_ms:
            raise PlanValueError("a schedule retry needs at least one delay, like schedule([1s, 5s, 1m])")
        return self


class RetryRule(_Frozen):
    on: list[str]  # qualified exception names, "payments.errors.GatewayTimeout"
    policy: RetryPlan


class UniquePlan(_Frozen):
    """`unique key=EXPR, within=DURATION, conflict=skip|reject|replace`."""

    key: ExprTree
    within_ms: int
    conflict: Literal["skip", "reject", "replace"] = "skip"

    @field_validator("within_ms")
    @classmethod
    def _within(cls, value: int) -> int:
        if value <= 0:
            raise PlanValueError(f"unique `within` must be longer than 0, got {value} ms")
        return value


class CatchupPlan(_Frozen):
    """What to do with ticks missed while no scheduler ran: none, the last N, or all within a bound."""

    kind: Literal["none", "last", "all"] = "none"
    count: int = 0  # for last(N)
    within_ms: int | None = None  # for all(within=…)

    @field_validator("count")
    @classmethod
    def _count(cls, value: int) -> int:
        if value < 0:
            raise PlanValueError(f"catchup last(N) needs N >= 0, got {value}")
        return value


class TriggerPlan(_Frozen):
    """A schedule that starts runs of its flow: `cron … tz …`, `every 6h`, `at "ISO"`, or `event "NAME"`."""

    name: str  # unique within the flow: "cron:0", "every:1", …, "event:2"
    kind: Literal["cron", "every", "at", "event"]
    cron: str | None = None
    timezone: str = "UTC"  # IANA name
    every_ms: int | None = None
    at: str | None = None  # ISO 8601 with offset
    catchup: CatchupPlan = CatchupPlan()
    overlap: Literal["skip", "queue", "allow"] = "skip"
    on_dst_gap: Literal["skip", "shift"] = "shift"  # a local time that does not exist that day
    on_dst_repeat: Literal["first", "both"] = "first"  # a local time that occurs twice that day
    params: dict[str, ExprTree] = Field(default_factory=dict)
    event: str | None = None  # kind "event": the event's name; `params` may read `event.FIELD`
    key: ExprTree | None = None  # kind "event": events with an equal key within `key_within_ms` start one run
    key_within_ms: int | None = None


class LimiterPlan(_Frozen):
    """A limiter a job takes a slot of before it starts (`limiter NAME = rate(...)` / `concurrency(N)`).

    Its state in Redis is keyed by `name` (qualified by the module that declares it, so one limiter
    imported by several flows is one limit), one bucket or semaphore per value of the job's `by` key.
    """

    name: str
    kind: Literal["rate", "concurrency"]
    rate: int = 0  # rate: admissions per period
    period_ms: int = 0  # rate: 1000 (N/s), 60000 (N/m), 3600000 (N/h)
    burst: int | None = None  # rate: the bucket's size; None means `rate`
    limit: int = 0  # concurrency: jobs running at once per key


class LimitUse(_Frozen):
    """`limit NAME` or `limit NAME by EXPR` on a job: the limiter and the key its bucket is per."""

    limiter: str  # a key of FlowPlan.limiters
    by: ExprTree | None = None  # evaluated when the job is ready; None = one bucket for the limiter


class FairPlan(_Frozen):
    """`fair by EXPR [weight EXPR]`: jobs of one level are served round robin across keys, by weight."""

    key: ExprTree
    weight: ExprTree | None = None  # None = 1


class ValueType(_Frozen):
    """The shape of a value the runtime checks without importing Python code: a signal's payload.

    `name` is a built-in (Str, Int, Float, Bool, Date, DateTime, Duration, Decimal, Bytes, None), Json
    (anything), list (`args[0]` its items), dict (`args` key and value), Literal (`values`), or a class.
    A class whose fields the compiler read has `fields` (and the names without a default in `required`);
    `fields` None takes any JSON object.
    """

    name: str
    args: list[ValueType] = Field(default_factory=list)
    optional: bool = False
    values: list[Any] = Field(default_factory=list)
    fields: dict[str, ValueType] | None = None
    required: list[str] = Field(default_factory=list)
    qualname: str | None = None  # a class's "module.Class"

    def __str__(self) -> str:
        if self.name == "Literal":
            inner = f"[{', '.join(repr(v) for v in self.values)}]"
        else:
            inner = f"[{', '.join(str(a) for a in self.args)}]" if self.args else ""
        return f"{self.name}{inner}{'?' if self.optional else ''}"


class SignalPlan(_Frozen):
    """`job NAME = signal TYPE { timeout D }`: the job runs no task; it waits (holding no worker) until a
    payload of `type` is sent to its run, which becomes its result. None: it waits for ever."""

    type: ValueType
    timeout_ms: int | None = None

    @field_validator("timeout_ms")
    @classmethod
    def _timeout(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise PlanValueError(f"a signal's timeout must be longer than 0, got {value} ms")
        return value


SIGNAL_TASK = "tqflow.signal"  # the TaskRef.name of a signal job (no worker runs it)
SUBFLOW_TASK = "tqflow.subflow"  # the TaskRef.name of a sub-flow job (it starts a child run)


class SubflowPlan(_Frozen):
    """`job NAME = flow OTHER(p=…)`: the job starts a run of the deployed flow `flow` (deployed with this
    plan; `plan_id` the version it was compiled against) with its arguments as parameters, and ends as
    that child run ends; its result is the child's outputs."""

    flow: str
    plan_id: str


class TaskRef(_Frozen):
    name: str  # the name the worker's registry knows it by: "module.function" unless renamed
    module: str
    function: str
    signature_hash: str


class JobPlan(_Frozen):
    name: str
    task: TaskRef
    args: dict[str, ExprTree]
    queue: str
    priority: str = DEFAULT_PRIORITY
    retry: RetryPlan = RetryPlan()
    timeout_ms: int | None = None
    deadline_ms: int | None = None
    delay_ms: int = 0
    data_deps: list[str] = Field(default_factory=list)  # jobs whose output this job reads
    after: ExprTree | None = None  # a status condition over upstream jobs
    waits_for: list[str] = Field(default_factory=list)  # every upstream job, data and `after`
    when: ExprTree | None = None
    fan_out: dict[str, Any] | None = None  # {"var": name, "over": expr}: one job per item, .out is a list
    unique: UniquePlan | None = None
    dead_letter: str | None = None  # a named dead-letter queue; None = the deployment's default
    limits: list[LimitUse] = Field(default_factory=list)
    fair: FairPlan | None = None
    signal: SignalPlan | None = None  # a signal job: waits for a payload instead of running `task`
    subflow: SubflowPlan | None = None  # a sub-flow job: a child run instead of `task`

    @field_validator("priority")
    @classmethod
    def _priority(cls, value: str) -> str:
        return Priority.parse(value).label

    @field_validator("timeout_ms", "deadline_ms", "delay_ms")
    @classmethod
    def _times(cls, value: int | None) -> int | None:
        return None if value is None else check_ms(value, "a job's timeout, deadline or delay")


class OutputPlan(_Frozen):
    name: str
    value: ExprTree


class ParamPlan(_Frozen):
    name: str
    type: str
    default: ExprTree | None = None


class FlowPlan(_Frozen):
    name: str
    queue: str = DEFAULT_QUEUE
    params: list[ParamPlan] = Field(default_factory=list)
    jobs: dict[str, JobPlan]
    order: list[str]  # a topological order of the jobs
    outputs: list[OutputPlan] = Field(default_factory=list)  # in declaration order
    triggers: list[TriggerPlan] = Field(default_factory=list)
    modules: list[str] = Field(default_factory=list)  # Python modules a worker imports to run it
    limiters: dict[str, LimiterPlan] = Field(default_factory=dict)  # those its jobs use, by name

    def canonical_json(self) -> str:
        return canonical_json(self.model_dump(mode="json"))

    @property
    def id(self) -> str:
        return str(_FLOW_IDS.get(self, _flow_id))

    def dependents(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {name: [] for name in self.jobs}
        for name in self.order:
            for upstream in self.jobs[name].waits_for:
                result[upstream].append(name)
        return result


def _flow_id(flow: FlowPlan) -> str:
    return hashlib.sha256(flow.canonical_json().encode()).hexdigest()


class Plan(_Frozen):
    schema_: str = Field(default=PLAN_SCHEMA, alias="schema")
    source: str
    flows: dict[str, FlowPlan]

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def to_json(self) -> str:
        return canonical_json(self.model_dump(mode="json", by_alias=True))

    @property
    def id(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @staticmethod
    def from_json(text: str) -> Plan:
        return Plan.model_validate_json(text)


# json.dumps with these options makes a JSONEncoder a call (a third of the time of a small value's text)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    return _CANONICAL.encode(value)
