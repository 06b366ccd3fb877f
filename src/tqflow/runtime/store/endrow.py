"""The end record of a lean job's first-attempt success, packed: one field `ran` beside `state` and `result`.

A lean job (store/lean.py) that succeeds at its first attempt gets its record at its end, and nothing reads
most of it but a view: its started and finished times, worker, task, options and arguments. Written as 9
hash fields they cost Redis ~17k instructions a job (a listpack HSET pays field by field, callgrind); as
`state`, `result` and `ran` they cost ~6k, and the worker's finish_many call (store/calls.py, its short form)
sends that field made, 5 arguments a job instead of 10. `ran` is

    STARTED \\x1f FINISHED \\x1f WORKER \\x1f TASK \\x1f OPTIONS \\x1f ARGUMENTS

(ms, ms, text, text, JSON or '' for none, the stored payload text; the arguments last, so they may hold any
character). `pack` is its one writer, `expand` its one reader: records.py applies it to every job hash read,
so every reader (JobRecord, the inspector's views, the REST API, `tqc`, waiters) sees the fields a record
written field by field holds (`attempt` 1, `started`, `finished`, `worker`, `task`, `opts`, `payload`), and
records written before `ran`, field by field, read as they always did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FIELD = "ran"
SEP = "\x1f"


def pack(started: int | str, finished: int | str, worker: str, task: str, opts: str, args: str) -> str | None:
    """The `ran` field, or None when a name holds the separator (that end is written field by field)."""
    if SEP in worker or SEP in task or SEP in opts:
        return None
    return f"{started}{SEP}{finished}{SEP}{worker}{SEP}{task}{SEP}{opts}{SEP}{args}"


def expand(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """A job hash (or an HMGET of named fields) with its `ran` unpacked into the fields it stands for; the
    row itself when it has none."""
    ran = row.get(FIELD)
    if not ran:
        return row
    parts = str(ran).split(SEP, 5)
    if len(parts) != 6:
        return row
    started, finished, worker, task, opts, args = parts
    out = {k: v for k, v in row.items() if k != FIELD}
    out.update(attempt="1", started=started, finished=finished, worker=worker, task=task, payload=args)
    if opts:
        out["opts"] = opts
    return out
