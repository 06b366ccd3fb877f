"""Every diagnostic code, with a one-line title and the long explanation `tqc explain` prints."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    code: str
    title: str
    explanation: str


_CODES = [
    Code(
        "TQ0000",
        "internal error",
        "The compiler itself failed on this input: a bug in tqflow, not in your file. `tqc` prints\n"
        '"internal error, please report" with the exception and exits with status 3 instead of a\n'
        "traceback. Please report it with the file that caused it (or the smallest part of it that\n"
        "still does).",
    ),
    Code(
        "TQ0002",
        "file too large",
        "A .tqflow file may hold at most 8,000,000 characters (50,000 jobs take about 2.5 MB). The\n"
        "limit keeps every command fast and bounded in memory; split a larger file with\n"
        '`import "other.tqflow" as x`, and keep large data (long string literals) out of flow files.',
    ),
    Code(
        "TQ0003",
        "file is not UTF-8",
        "A .tqflow file is UTF-8 text (a byte-order mark at the start is allowed and ignored). The\n"
        "caret shows the first byte that does not decode; re-save the file as UTF-8, or convert it\n"
        "with `iconv -f latin1 -t utf-8 old.tqflow > new.tqflow`. Python task modules are read as\n"
        "Python reads them: UTF-8 unless a PEP 263 coding line (`# -*- coding: latin-1 -*-`) says\n"
        "otherwise (a module that does not decode is reported as TQ0101).",
    ),
    Code(
        "TQ0004",
        "nested too deeply",
        "Brackets, operators and statements may be nested at most 100 levels deep in one another\n"
        "(`[[[…]]]`, `a and b and …` with 100 terms, 100 `not`s). Deeper nesting is never needed in a\n"
        "flow; it is refused so that checking, formatting and running stay bounded. Name parts of a\n"
        "large value in the task, or pass it as a parameter.",
    ),
    Code(
        "TQ0001",
        "syntax error",
        "The file does not follow the .tqflow grammar. The caret shows the first token that could not\n"
        "be read and the label lists what the parser expected there. Each top-level declaration\n"
        "(use, import, retry, limiter, flow) is checked on its own, so one mistake per declaration is\n"
        "shown.",
    ),
    Code(
        "TQ0101",
        "unknown module",
        "A `use` line names a Python module that was found neither next to the .tqflow file nor on\n"
        "the Python path. tqflow reads the module's source with `ast` (it never imports it to check),\n"
        "so the file must exist: check the spelling, or run from the folder that holds the package.",
    ),
    Code(
        "TQ0102",
        "unknown name in module",
        "`use module.{Name}` names something the module does not define at its top level.",
    ),
    Code(
        "TQ0103",
        "duplicate name",
        "Two declarations of the same kind share a name (two jobs in one flow, two flows, two params,\n"
        "two retry policies, two limiters, two `use` aliases). Names must be unique so references are\n"
        "unambiguous.",
    ),
    Code(
        "TQ0104",
        "imported file not usable",
        '`import "other.tqflow" as x` names a file that does not exist (paths are relative to the\n'
        "importing file) or that has errors of its own. The imported file's diagnostics are shown too;\n"
        "fix them first. Its named retry policies and limiters become `x.name`.",
    ),
    Code(
        "TQ0105",
        "import cycle",
        "Files import each other in a circle. Move what they share (named retry policies) into a\n"
        "third file that both import.",
    ),
    Code(
        "TQ0201",
        "unknown task",
        "A job calls `alias.function` but the module bound to `alias` has no function of that name\n"
        "decorated with `@task`. Only decorated functions can run as jobs.",
    ),
    Code(
        "TQ0202",
        "unknown name",
        "An expression uses a name that is neither a job of this flow, `params`, `run`, nor the\n"
        "variable of a fan-out. Jobs are referenced as `job.out`, parameters as `params.name`.",
    ),
    Code(
        "TQ0203",
        "unknown job",
        "An `after` condition, a status function or a data reference names a job that this flow does\n"
        "not declare.",
    ),
    Code(
        "TQ0204",
        "unknown parameter",
        "`params.x` names a parameter that the flow's `params { … }` block does not declare.",
    ),
    Code(
        "TQ0205",
        "unknown retry policy",
        "A `retry` setting names a policy that no top-level `retry NAME = …` declares. Built-in\n"
        "policies are `fixed(…)`, `exponential(…)`, `schedule([…])` and `none`.",
    ),
    Code(
        "TQ0206",
        "unknown priority",
        "Priorities are, from highest to lowest: critical, high, normal, low, batch.",
    ),
    Code(
        "TQ0207",
        "bad reference",
        "Only `job.out` (and fields or items of it) reads another job's result, and only the status\n"
        "names `succeeded`, `failed`, `done` and `skipped` follow a job name in an `after` condition.",
    ),
    Code(
        "TQ0208",
        "unknown exception",
        "A retry block (`on X -> …`, `never X`) names an exception that is neither bound by a `use`\n"
        "line (`use payments.errors.{GatewayTimeout}`, or `errors.GatewayTimeout` after\n"
        "`use payments.errors as errors`) nor a Python built-in exception (`TimeoutError`,\n"
        "`ConnectionError`, …). The plan records qualified names (`payments.errors.GatewayTimeout`,\n"
        "`builtins.TimeoutError`); the worker matches the raised exception and its base classes.",
    ),
    Code(
        "TQ0209",
        "unknown type",
        "A parameter's type is not one of Str, Int, Float, Bool, Date, DateTime, Duration, Decimal,\n"
        "Json, list[T], dict[Str, T] (add `?` for optional), nor a class name (capitalised) from a task\n"
        "module, which is taken as an opaque type.",
    ),
    Code(
        "TQ0210",
        "unknown imported flow",
        "`flow NAME = x.other` deploys the flow `other` of the file imported as `x` under the name NAME\n"
        "(with its jobs, schedules and policies unchanged). `x` must be bound by an `import` line and\n"
        "the imported file must declare the flow. The tasks it calls are found relative to the imported\n"
        "file, so a worker must be able to import them too.",
    ),
    Code(
        "TQ0211",
        "unknown limiter",
        "A job's `limit NAME` names a limiter that no top-level `limiter NAME = …` of this file declares,\n"
        'nor an imported file (`limit x.NAME` after `import "other.tqflow" as x`). Limiters are\n'
        "`limiter api = rate(10/s, burst=20)` and `limiter db = concurrency(5)`.",
    ),
    Code(
        "TQ0212",
        "unknown flow",
        "`job x = flow OTHER(p=…)` runs another flow as a child run: OTHER must be a flow of this file,\n"
        'or `x.OTHER` a flow of a file imported with `import "other.tqflow" as x`. The child\'s\n'
        "parameters are the job's arguments (checked as a task call's are: TQ0301-TQ0304) and its\n"
        "outputs are the job's `.out` fields.",
    ),
    Code(
        "TQ0301",
        "unknown argument",
        "A job passes an argument that the task's Python signature does not have. Argo and others only\n"
        "notice this at run time; tqflow reads the signature and refuses the call before anything runs.",
    ),
    Code(
        "TQ0302",
        "missing argument",
        "The task's signature has a parameter without a default that the job does not pass.",
    ),
    Code(
        "TQ0303",
        "positional argument",
        "Task arguments are passed by name (`task(x=1)`), so that a change in the order of the Python\n"
        "parameters can never silently change what a flow passes.",
    ),
    Code(
        "TQ0304",
        "type mismatch",
        "A value is passed where the task's Python annotation (or the parameter's declared type)\n"
        "expects a different type: a string literal for an `int`, `none` for a parameter that is not\n"
        "Optional, an upstream job whose return annotation is `list[int]` feeding a `str`. Annotations\n"
        "are read with `ast` (int, str, float, bool, date, datetime, timedelta, Decimal, list[...],\n"
        "dict[K, V], Optional[...], X | None, Literal[...], NewTypes and aliases, also imported from\n"
        "other modules). The verdicts follow mypy --strict: an `Int?` parameter or a `-> int | None`\n"
        "result may be none, so it does not fit an `int`; a NewType takes only itself (`user=1` for a\n"
        "`UserId` is refused); a Literal takes one of its values. Classes (pydantic models) are only\n"
        "compared by name. Deliberate differences, because values cross as JSON: a string in ISO form\n"
        "is accepted for a date or datetime, an int for a float or Decimal, and list items widen.",
    ),
    Code(
        "TQ0305",
        "invalid operation",
        "An expression applies `+`/`-` to types that do not combine (a string minus a duration), or\n"
        "reads a field of a value that has no fields (an int, a list), or a field that a pydantic model,\n"
        "dataclass, TypedDict or NamedTuple does not declare, or compares values that can never be\n"
        "equal (`rows.out == 3` with a list). `+ -` work on numbers, dates and durations (Date - Duration\n"
        "is a Date, Date - Date a Duration), `+` on strings and lists; fields are read from dicts and\n"
        "objects.",
    ),
    Code(
        "TQ0306",
        "fan-out over a non-list",
        "`job x = m.t(u=u) for u in EXPR` runs one job per item of EXPR, which must be a list: a job's\n"
        "list result (`discover.out`) or a list literal. The variable `u` then has the element type,\n"
        "which is checked against the parameter it feeds. The fan-out job's `.out` is a list of its\n"
        "results, in item order (the fan-in).",
    ),
    Code(
        "TQ0401",
        "dependency cycle",
        "Jobs depend on each other in a circle, so none of them could ever start. Dependencies come\n"
        "from reading another job's `.out` and from `after` conditions; the message shows the whole\n"
        "path. Break the cycle by removing one of the edges shown. A flow that starts itself through\n"
        "sub-flow jobs (`job x = flow OTHER(…)`, directly or through other flows) is a cycle too.",
    ),
    Code(
        "TQ0402",
        "job can never run",
        "A job's `after` condition can never hold, whatever happens upstream, so it would always be\n"
        "skipped: `after a and not a`, `after a.failed` on a job whose result it also reads (reading\n"
        "`a.out` requires a to succeed), or `after a.skipped` where `a` has no condition and so can\n"
        "never be skipped. Every job ends exactly one of succeeded, failed or skipped; `done` is any.",
    ),
    Code(
        "TQ0501",
        "invalid retry policy",
        "`attempts` counts every try including the first, so it must be at least 1. Policies are\n"
        "`fixed(DELAY)`, `exponential(BASE, factor=F, max=MAX, jitter=full|equal|none|N%)`,\n"
        "`schedule([D1, D2, …])` and `none`.",
    ),
    Code(
        "TQ0502",
        "invalid setting",
        "A job or defaults setting has a value of the wrong kind (a duration where one is expected,\n"
        "a known priority name, a non-empty queue name …).",
    ),
    Code(
        "TQ0503",
        "exception both retried and not",
        "A retry block names the same exception in an `on` rule and in `never`. Only one can apply;\n"
        "remove it from one of them.",
    ),
    Code(
        "TQ0504",
        "deadline shorter than timeout",
        "`deadline` bounds all attempts of a job together, `timeout` one attempt. A deadline shorter\n"
        "than the timeout means the timeout can never be reached: the deadline always ends the job\n"
        "first. Raise the deadline or lower the timeout.",
    ),
    Code(
        "TQ0601",
        "invalid schedule time",
        "A cron expression has five fields: minute (0-59), hour (0-23), day of month (1-31), month\n"
        "(1-12 or jan-dec) and day of week (0-7, 0 and 7 are Sunday, or sun-sat), each `*`, a number,\n"
        "a range `a-b`, a list `a,b` and an optional step `/n`. The macros @hourly, @daily, @weekly,\n"
        "@monthly and @yearly are accepted. `every` needs an interval of at least 1s.\n"
        "Days follow Vixie cron: when the day-of-month or day-of-week field starts with `*`, a day must\n"
        "match both (a plain `*` leaves the other field alone to decide); when both are restricted, a\n"
        "day matching either fires (`0 0 1 * 1` is the 1st of each month and every Monday).\n"
        "A cron that can never fire is refused too: `0 12 30 2 *` names February 30th, `0 0 31 4,6 *`\n"
        "the 31st of April and June, days that never come (a scheduler would wait forever).",
    ),
    Code(
        "TQ0602",
        "unknown time zone",
        "`tz` takes an IANA time zone name such as Europe/Paris, America/New_York, Asia/Tokyo or\n"
        "UTC (the names `zoneinfo.available_timezones()` lists). Abbreviations like CET or PST are\n"
        "ambiguous and are not accepted.",
    ),
    Code(
        "TQ0603",
        "schedule without a time zone",
        "A cron schedule has no `tz`, so UTC is assumed. Cron times mean a wall clock; say which one,\n"
        'so that `0 9 * * *` is 9 o\'clock where you mean it (write `tz "UTC"` to keep UTC).',
    ),
    Code(
        "TQ0604",
        "scheduled time in a DST gap or repeat",
        "In the schedule's zone, one of the scheduled local times does not exist on the day clocks go\n"
        "forward (the gap) or occurs twice on the day they go back (the repeat). State what should\n"
        "happen: `on_dst_gap skip` (no run that day) or `on_dst_gap shift` (run at the same instant,\n"
        "shown later by the gap: 02:30 becomes 03:30), and `on_dst_repeat first` (run once) or\n"
        "`on_dst_repeat both` (run at both). Without a statement: shift and first.\n"
        "The check looks at the transitions of 2026 and 2027.",
    ),
    Code(
        "TQ0605",
        "unbounded catch-up",
        "`catchup all` would start every tick missed while no scheduler ran: after a month of\n"
        "downtime, a month of runs at once (airflow #30195). Bound it with `catchup all(within=7d)`\n"
        "(only ticks of the last 7 days), or use `catchup last(N)` or `catchup none` (the default).",
    ),
    Code(
        "TQ0606",
        "invalid schedule option",
        "Schedule blocks take `catchup none|last(N)|all(within=D)`, `overlap skip|queue|allow` (what\n"
        "to do when the previous run is still going), `on_dst_gap skip|shift` and\n"
        "`on_dst_repeat first|both`, each at most once. `catchup` does not apply to a one-off `at`.",
    ),
    Code(
        "TQ0607",
        "invalid `at` time",
        '`schedule at "…"` takes an ISO 8601 date and time with a UTC offset, like\n'
        '"2026-12-01T09:00:00+01:00" or "2026-12-01T08:00:00Z". Without the offset the moment is\n'
        "ambiguous.",
    ),
    Code(
        "TQ0701",
        "non-deterministic uniqueness key",
        "`unique key=…` deduplicates runs whose keys are equal within the window. A key built from\n"
        "`run.id` or `run.time` is different for every run, so it never deduplicates anything. Build\n"
        "it from parameters (`params.day`) or `run.date`.",
    ),
    Code(
        "TQ0801",
        "invalid limiter",
        "A limiter is `rate(N/UNIT)` or `rate(N/UNIT, burst=M)`, admitting N jobs per period (UNIT is\n"
        "s, m, h or d, or a duration: `100/10s`) from a bucket of M tokens (default N), or\n"
        "`concurrency(N)`, at most N jobs running at once. Counts are whole numbers up to\n"
        "1,000,000,000: write `30/m` rather than `0.5/s`.",
    ),
    Code(
        "TQ0802",
        "limiter that never admits a job",
        "`rate(0/s)`, `burst=0` and `concurrency(0)` describe a limit no job can ever pass: every job\n"
        "that uses it would wait forever. To stop a flow for a while, pause its schedules\n"
        "(`tqc pause FLOW`) or cancel its runs instead.",
    ),
    Code(
        "TQ0803",
        "limiter used twice on one job",
        "A job takes one slot of each limiter it names, so naming the same limiter twice (even with\n"
        "different `by` keys) is a mistake: the job would count twice against one limit. To limit by\n"
        "two keys (per customer and per region), declare two limiters.",
    ),
    Code(
        "TQ0804",
        "invalid limit or fairness key",
        "`limit NAME by EXPR` keeps one bucket or semaphore per value of EXPR, and `fair by EXPR` takes\n"
        "turns across its values, so EXPR is a string or an int (an f-string turns other values into\n"
        "one), not none, and known before the job starts: `params`, `run`, or an upstream job's result\n"
        "(the job then waits for that job, as it does for data it reads), never the job's own. The\n"
        "items of a fan-out job share the job's key, so it cannot read the item variable. In\n"
        "`defaults`, which applies to every job, it may read only `params` and `run`. A key that reads\n"
        "an upstream result is finished when the job is ready, from fields, indexes, f-strings and `+`\n"
        'only (`f"{a.out.region}-{a.out.shard}"`).',
    ),
    Code(
        "TQ0805",
        "invalid fairness weight",
        "`fair by EXPR weight W` gives a key W turns for every turn of a key of weight 1 (the default).\n"
        "A weight is a number greater than 0: a constant is checked by the compiler, an expression\n"
        "(`params.weight`) must be an Int or Float. Like a key (TQ0804), it is known before the job\n"
        "starts; one that reads an upstream result is made of fields, indexes and `+` only.",
    ),
]

CODES: dict[str, Code] = {c.code: c for c in _CODES}


def explain(code: str) -> str | None:
    entry = CODES.get(code.upper())
    if entry is None:
        return None
    return f"{entry.code}: {entry.title}\n\n{entry.explanation}\n"
