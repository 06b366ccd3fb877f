"""The codec of what a job's record and options hold on the wire: the one reader of a job hash, the one
writer of a job's options JSON, and the one place that decides whether a job needs a record at enqueue.

`JobRecord.parse` reads a job hash (or what a lean entry stands for, see lean.py) into typed fields; the
client's `JobInfo` (jobs.py) and the inspector's `JobView` (inspect.py) are both built from it. `fields`
gives a hash's fields as a record written field by field holds them (a lean success's packed end, endrow.py,
unpacked), for readers of fields `JobRecord` does not type (the arguments, the options).
`options_json` writes the options a job carries (`d` delay ms, `dl` deadline ms, `t` timeout ms, `r` retry
plan, `dlq` dead-letter queue, `uk`/`ut`/`uc` unique key, ttl ms, conflict, `lim` limiters: see
runtime/limits.py, `fk`/`fw` fair key and weight: lua/fair.lua, `nr` no result kept: keep_result=False),
for standalone and flow jobs alike; `job_options` reads them back (the worker). `needs_record` is the
enqueue's decision; enqueue.lua trusts it (a row with no id is lean).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from tqflow.plan import Priority, RetryPlan
from tqflow.runtime.store import endrow, lean

# The fields a client reads of a job, in the order `job_row` returns them.
JOB_FIELDS = (
    "state",
    "attempt",
    "result",
    "error",
    "reason",
    "task",
    "queue",
    "prio",
    "run",
    "name",
    "worker",
    "enqueued",
    "started",
    "finished",
    "due",
    endrow.FIELD,  # a lean first-attempt success's packed end (endrow.py): `parse` unpacks it
)
# The parts of a run job's context as its start sends them (lua/common.lua started_row), a line each; then
# what its end reads of the record, sent back by the worker (StartKnown).
RUN_CONTEXT = ("run", "name", "flow", "args", "when", "fan_out", "unique", "params", "created")
END_PARTS = 3  # stream, entry, dependents


class StartKnown(NamedTuple):
    """What a run job's start wrote or read of its record that its end needs (finish_many sends it back:
    lua/common.lua finish_attempt then does not read it): none changes while the attempt's token is the
    job's. `parent` is a fan-out item's (never a run job's: '')."""

    stream: str
    entry: str
    run: str
    parent: str
    dependents: str


def run_context(value: Any, job_id: str) -> tuple[dict[str, Any] | None, StartKnown | None]:
    """A start row's run info as the worker reads it: {run, name, flow, args, when?, fan_out?, unique?,
    outputs, params, created?} for a run job, {parent, of_run, flow} for a fan-out item, None for neither;
    and what its end may send back (StartKnown), or None.

    A run job's comes as a text, a newline and then its parts a line each (RUN_CONTEXT, then the END_PARTS;
    an empty one is none), alone or as the first item of a list whose other items are its upstream outputs,
    name and result (None: none) a data dependency: a cjson.encode of it cost Redis ~15k instructions a
    start. A JSON object (a fan-out item's, a start of an older tqflow) is decoded. Raises ValueError on
    anything else (the worker dead-letters the attempt). A missing name is the id's (RUN.NAME)."""
    if value is None or value is False or value == "":
        return None, None
    outputs: Any = ()
    if isinstance(value, (list, tuple)):
        value, outputs = (value[0], value[1:]) if value else ("", ())
    if not isinstance(value, str):
        raise ValueError(f"run info is a {type(value).__name__}, not a text")
    if not value.startswith("\n"):
        decoded = json.loads(value)
        if not isinstance(decoded, dict):
            raise ValueError(f"run info is a {type(decoded).__name__}, not an object")
        return decoded, None
    parts = value[1:].split("\n")
    if len(parts) != len(RUN_CONTEXT) + END_PARTS or len(outputs) % 2:
        raise ValueError("run info does not hold a run context's parts")
    stream, entry, dependents = parts[len(RUN_CONTEXT) :]
    context: dict[str, Any] = {name: part for name, part in zip(RUN_CONTEXT, parts, strict=False) if part}
    run = context.get("run", "")
    if "name" not in context and job_id.startswith(run + "."):
        context["name"] = job_id[len(run) + 1 :]
    context["outputs"] = {outputs[i]: outputs[i + 1] for i in range(0, len(outputs), 2)}
    context.setdefault("params", None)
    known = StartKnown(stream, entry, run, "", dependents) if stream and entry and run else None
    return context, known


# a delay, a deadline, a unique key, a fair key or dependencies need a record at once
RECORD_OPTIONS = ("d", "dl", "uk", "fk", "dep")


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def run_job_name(job_id: str, run: Any) -> str:
    """A run job's name from its id (RUN.NAME): its record holds none (create_run), an older one does."""
    run = str(run or "")
    return job_id[len(run) + 1 :] if run and job_id.startswith(run + ".") else ""


def error_of(value: Any) -> dict[str, Any] | None:
    """A stored error (JSON: type, message, traceback …); text that is not a JSON object is its message."""
    if value in (None, ""):
        return None
    try:
        decoded = json.loads(value)
    except (TypeError, ValueError):
        return {"message": str(value)}
    return decoded if isinstance(decoded, dict) else {"message": str(decoded)}


def fields(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """A job hash's fields, a lean first-attempt success's packed end (endrow.py) unpacked."""
    return endrow.expand(row)


@dataclass(frozen=True)
class JobRecord:
    """A job hash, read: every field a reader shows, typed. `result` stays the stored payload text."""

    id: str
    state: str
    attempt: int = 0
    task: str = ""
    queue: str = ""
    priority: str = ""
    run: str = ""
    of_run: str = ""  # a fan-out child: its parent's run
    name: str = ""
    flow: str = ""
    worker: str = ""
    reason: str | None = None
    error: dict[str, Any] | None = None
    result: str | None = None
    created: int | None = None
    enqueued: int | None = None
    started: int | None = None
    finished: int | None = None
    due: int | None = None
    children: int | None = None
    children_left: int | None = None

    @classmethod
    def parse(cls, job_id: str, row: Mapping[str, Any]) -> JobRecord | None:
        """None when there is no such job (no state). A lean first-attempt success's packed end (`ran`,
        endrow.py) reads as the fields it stands for."""
        state = row.get("state")
        if state in (None, ""):
            return None
        row = endrow.expand(row)
        result = row.get("result")
        where = lean.parse(job_id) if not row.get("queue") else None
        if where is not None:  # the end of a lean job's first attempt: its id says where it was queued
            row = {**row, "queue": where[0], "prio": where[1], "enqueued": where[2].split("-")[0]}
        return cls(
            id=job_id,
            state=str(state),
            attempt=_int(row.get("attempt")) or 0,
            task=str(row.get("task") or ""),
            queue=str(row.get("queue") or ""),
            priority=Priority.label_of(row.get("prio")),
            run=str(row.get("run") or ""),
            of_run=str(row.get("of_run") or ""),
            name=str(row.get("name") or run_job_name(job_id, row.get("run"))),
            flow=str(row.get("flow") or ""),
            worker=str(row.get("worker") or ""),
            reason=row.get("reason") or None,
            # a success after retries keeps its last error in the hash; it belongs to an earlier attempt
            # (the attempt history has it), not to the job
            error=None if state == "succeeded" else error_of(row.get("error")),
            result=None if result is None else str(result),
            created=_int(row.get("created")),
            enqueued=_int(row.get("enqueued")),
            started=_int(row.get("started")),
            finished=_int(row.get("finished")),
            due=_int(row.get("due")),
            children=_int(row.get("children")),
            children_left=_int(row.get("children_left")),
        )

    @property
    def first_attempt_only(self) -> bool:
        """A first-attempt success: its record says all its attempt history would (none is written)."""
        return self.state == "succeeded" and self.attempt == 1 and self.started is not None


# -- options -----------------------------------------------------------------------------------------


def options_json(
    *,
    delay_ms: int = 0,
    deadline_ms: int | None = None,
    timeout_ms: int | None = None,
    retry: RetryPlan | None = None,
    retry_off: bool = False,
    dead_letter: str | None = None,
    unique: tuple[str, int, str] | None = None,
    limits: list[dict[str, Any]] | None = None,
    fair: tuple[str, float | None] | None = None,
    depends_on: tuple[str, ...] = (),
    allow_failure: bool = False,
    keep_result: bool = True,
) -> str:
    """The options a job carries, compactly (most jobs carry none: an empty string). `retry_off`: the job
    was given a plan that retries nothing (`r: {}`), so the worker must not apply the task's own."""
    o: dict[str, Any] = {}
    if delay_ms > 0:
        o["d"] = delay_ms
    if deadline_ms:
        o["dl"] = deadline_ms
    if timeout_ms:
        o["t"] = timeout_ms
    if retry is not None and (retry.kind != "none" or retry.rules or retry.never):
        o["r"] = retry.model_dump(mode="json", exclude_defaults=True)
    elif retry_off:
        o["r"] = {}
    if dead_letter:
        o["dlq"] = dead_letter
    if unique is not None:
        o["uk"], o["ut"], o["uc"] = unique
    if fair is not None:
        o["fk"] = fair[0]
        if fair[1] is not None and fair[1] != 1:
            o["fw"] = fair[1]
    if depends_on:
        o["dep"] = list(depends_on)
        if allow_failure:
            o["da"] = "done"
    if not keep_result:
        o["nr"] = 1  # no result kept (lua/common.lua finish_first)
    if limits:  # the last key: a lean job's entry keeps them apart as its `l` (lua/enqueue.lua lean_split)
        o["lim"] = limits
    return json.dumps(o, separators=(",", ":")) if o else ""


def job_options(text: str | None) -> dict[str, Any]:
    """The options a job carries, read back (an empty dict for none)."""
    return json.loads(text) if text else {}


@lru_cache(maxsize=256)
def needs_record(opts: str, queue: str) -> bool:
    """A delay (the delayed set holds ids), a deadline (its clock starts at enqueue) or a unique key (it
    names its holder) needs a job record at once; any other job is lean (lean.py) unless its queue's name
    would make an id that a URL path cannot carry (a lean id holds the queue name)."""
    if not lean.URL_SAFE.match(queue):
        return True
    return bool(opts) and any(k in job_options(opts) for k in RECORD_OPTIONS)
