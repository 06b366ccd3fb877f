"""The syntax tree of a `.tqflow` file: frozen dataclasses, each with the span it came from.

Spans do not take part in equality, so two trees compare equal when they mean the same program
(the formatter relies on that to prove it changed only layout).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tqflow.dsl.source import Source, Span


@dataclass(frozen=True, kw_only=True)
class Node:
    span: Span = field(default_factory=Span.unknown, compare=False, repr=False)


# ---- expressions -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Expr(Node):
    pass


@dataclass(frozen=True, kw_only=True)
class Literal(Expr):
    """`kind` is one of str, int, float, bool, none, duration (value in milliseconds), percent (value the
    number before `%`), date and datetime (value the ISO text)."""

    kind: str
    value: object
    text: str = field(default="", compare=False)


@dataclass(frozen=True, kw_only=True)
class FString(Expr):
    """`parts` alternate literal text (str) and embedded expressions."""

    parts: tuple[str | Expr, ...]
    text: str = field(default="", compare=False)


@dataclass(frozen=True, kw_only=True)
class Name(Expr):
    id: str


@dataclass(frozen=True, kw_only=True)
class Attr(Expr):
    value: Expr
    attr: str
    attr_span: Span = field(default_factory=Span.unknown, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Index(Expr):
    value: Expr
    index: Expr


@dataclass(frozen=True, kw_only=True)
class FuncCall(Expr):
    func: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, kw_only=True)
class ListExpr(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True, kw_only=True)
class DictExpr(Expr):
    items: tuple[tuple[Expr, Expr], ...]


@dataclass(frozen=True, kw_only=True)
class BinOp(Expr):
    """Arithmetic (`+`, `-`) and comparisons (`==`, `!=`, `<`, `<=`, `>`, `>=`)."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, kw_only=True)
class BoolOp(Expr):
    op: str  # "and" | "or"
    values: tuple[Expr, ...]


@dataclass(frozen=True, kw_only=True)
class Not(Expr):
    value: Expr


@dataclass(frozen=True, kw_only=True)
class Rate(Expr):
    """`10/s`, `600/m`, `100/10s`: admissions per period. Only a limiter's `rate(…)` takes one."""

    count: Literal  # an int (a float is parsed so the compiler can say what to write instead)
    per: Literal  # a unit as a str literal (`s`, `m`, `h`, as written) or a duration (`10s`)


# ---- declarations ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Arg(Node):
    name: str | None  # None for a positional argument (an error in task calls)
    value: Expr
    name_span: Span = field(default_factory=Span.unknown, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Call(Node):
    func: str  # dotted: "etl.extract_orders"
    args: tuple[Arg, ...]


@dataclass(frozen=True, kw_only=True)
class RetrySpec(Node):
    """`policy` is a call (`fixed(30s)`), or a Name referring to a named policy or `none`."""

    policy: Call | Name
    options: tuple[Arg, ...] = ()


@dataclass(frozen=True, kw_only=True)
class RetryRule(Node):
    """One line of a retry block: `on A, B -> spec` (kind "on"), `never A, B`, `else -> spec`."""

    kind: str  # "on" | "never" | "else"
    exceptions: tuple[Name, ...] = ()  # dotted ids: `GatewayTimeout`, `errors.CardDeclined`
    spec: RetrySpec | None = None


@dataclass(frozen=True, kw_only=True)
class RetryBlock(Node):
    """`retry { on X -> policy, attempts=N; never Y; else -> policy }`: a policy chosen per exception."""

    rules: tuple[RetryRule, ...]


@dataclass(frozen=True, kw_only=True)
class Unique(Node):
    """`unique key=EXPR, within=DURATION, conflict=skip|reject|replace` (options as written)."""

    options: tuple[Arg, ...]


@dataclass(frozen=True, kw_only=True)
class Limit(Node):
    """`limit NAME` or `limit NAME by EXPR`: the job takes a slot of the limiter (one per value of EXPR)."""

    limiter: str  # dotted: `api`, or `shared.api` for an imported file's limiter
    by: Expr | None = None
    limiter_span: Span = field(default_factory=Span.unknown, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Fair(Node):
    """`fair by EXPR [weight EXPR]`: jobs of one priority level take turns across the values of EXPR."""

    key: Expr
    weight: Expr | None = None


@dataclass(frozen=True, kw_only=True)
class Setting(Node):
    """One line of a job block or `defaults`: `priority high`, `after load`, `timeout 5m` …"""

    kind: str
    value: Expr | RetrySpec | RetryBlock | Unique | Limit | Fair | str


@dataclass(frozen=True, kw_only=True)
class ScheduleOption(Node):
    """`catchup last(3)`, `overlap skip`, `on_dst_gap shift`: a name and a value (name, call or int)."""

    name: str
    value: Expr | Call
    name_span: Span = field(default_factory=Span.unknown, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Schedule(Node):
    """`schedule cron "…" tz "…" { … }`, `schedule every 6h`, `schedule at "ISO"`."""

    kind: str  # "cron" | "every" | "at" | "event"
    value: Literal  # the cron text, ISO time or event name (str), or the interval (duration)
    tz: Literal | None = None
    options: tuple[ScheduleOption, ...] = ()
    params: tuple[Arg, ...] = ()  # `params { day = run.date - 1d }`: values for the runs it starts
    key: Expr | None = None  # an event trigger's `key EXPR`: events with equal keys start one run
    key_within: Literal | None = None  # `key EXPR within 1h` (the window; None = the default)


@dataclass(frozen=True, kw_only=True)
class TypeRef(Node):
    name: str
    args: tuple[TypeRef, ...] = ()
    optional: bool = False

    def __str__(self) -> str:
        inner = f"[{', '.join(str(a) for a in self.args)}]" if self.args else ""
        return f"{self.name}{inner}{'?' if self.optional else ''}"


@dataclass(frozen=True, kw_only=True)
class Param(Node):
    name: str
    type: TypeRef
    default: Expr | None = None


@dataclass(frozen=True, kw_only=True)
class FanOut(Node):
    var: str
    over: Expr


@dataclass(frozen=True, kw_only=True)
class SignalWait(Node):
    """`signal TYPE`: the job runs no task; it waits for a payload of TYPE sent to its run."""

    type: TypeRef


@dataclass(frozen=True, kw_only=True)
class Job(Node):
    """A job: a task call (`call`), a signal wait (`signal`, with an empty `call`), or a sub-flow
    (`subflow`: `call` names the flow, `other` or `x.other`, and passes its parameters)."""

    name: str
    call: Call
    fan_out: FanOut | None = None
    settings: tuple[Setting, ...] = ()
    signal: SignalWait | None = None
    subflow: bool = False
    name_span: Span = field(default_factory=Span.unknown, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Output(Node):
    name: str
    value: Expr


@dataclass(frozen=True, kw_only=True)
class Flow(Node):
    name: str
    queue: str | None = None
    params: tuple[Param, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    defaults: tuple[Setting, ...] = ()
    jobs: tuple[Job, ...] = ()
    outputs: tuple[Output, ...] = ()
    name_span: Span = field(default_factory=Span.unknown, compare=False, repr=False)
    # Where the `queue`, `params { … }` and `defaults { … }` statements are (for the formatter).
    queue_span: Span | None = field(default=None, compare=False, repr=False)
    params_span: Span | None = field(default=None, compare=False, repr=False)
    defaults_span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Use(Node):
    """`use a.b as c` (names empty) or `use a.b.{X, Y}` (names given, alias None)."""

    module: str
    alias: str | None = None
    names: tuple[str, ...] = ()

    @property
    def bound_name(self) -> str:
        return self.alias or self.module.split(".")[-1]


@dataclass(frozen=True, kw_only=True)
class Import(Node):
    path: str
    alias: str


@dataclass(frozen=True, kw_only=True)
class RetryDecl(Node):
    name: str
    spec: RetrySpec | RetryBlock
    name_span: Span = field(default_factory=Span.unknown, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class LimiterDecl(Node):
    """`limiter NAME = rate(10/s, burst=20)` or `limiter NAME = concurrency(5)` (checked by the compiler)."""

    name: str
    call: Call  # the kind as `func`; its arguments as written (a `Rate` for `10/s`)
    name_span: Span = field(default_factory=Span.unknown, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class FlowAlias(Node):
    """`flow nightly_eu = shared.nightly`: an imported flow, deployed from this file under a new name."""

    name: str
    target: str  # "alias.flow"
    name_span: Span = field(default_factory=Span.unknown, compare=False, repr=False)
    target_span: Span = field(default_factory=Span.unknown, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Module(Node):
    source: Source = field(compare=False, repr=False)
    uses: tuple[Use, ...] = ()
    imports: tuple[Import, ...] = ()
    retries: tuple[RetryDecl, ...] = ()
    limiters: tuple[LimiterDecl, ...] = ()
    flows: tuple[Flow, ...] = ()
    flow_aliases: tuple[FlowAlias, ...] = ()
    broken: tuple[str, ...] = field(
        default=(), compare=False
    )  # names bound by declarations that did not parse
