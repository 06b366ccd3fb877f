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
        "TQ0001",
        "syntax error",
        "The file does not follow the .tqflow grammar. The caret shows the first token that could not\n"
        "be read and the label lists what the parser expected there. Each top-level declaration\n"
        "(use, import, retry, flow) is checked on its own, so one mistake per declaration is shown.",
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
        "two retry policies, two `use` aliases). Names must be unique so references are unambiguous.",
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
        "TQ0401",
        "dependency cycle",
        "Jobs depend on each other in a circle, so none of them could ever start. Dependencies come\n"
        "from reading another job's `.out` and from `after` conditions; the message shows the whole\n"
        "path. Break the cycle by removing one of the edges shown.",
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
]

CODES: dict[str, Code] = {c.code: c for c in _CODES}


def explain(code: str) -> str | None:
    entry = CODES.get(code.upper())
    if entry is None:
        return None
    return f"{entry.code}: {entry.title}\n\n{entry.explanation}\n"
