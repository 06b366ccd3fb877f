"""The end record of a lean job's first-attempt success, packed: one field `ran` beside `state`.

A lean job (store/lean.py) that succeeds at its first attempt gets its record at its end, and nothing reads
most of it but a view or a waiter: its result, started and finished times, worker, task, options and
arguments. Written as 9 hash fields they cost Redis ~17k instructions a job (a listpack HSET pays field by
field, callgrind); as `state` and `ran` ~4k, and the worker's finish_many call (store/calls.py, its short
form) sends that field made: 2 arguments a job instead of 10. `ran` is

    STARTED \x1f FINISHED \x1f WORKER \x1f TASK \x1f OPTIONS \x1f N \x1f ARGUMENTS RESULT

(ms, ms, text, text, JSON or '' for none, the length of the arguments, the stored payload texts of the
arguments (N characters, ASCII: as many bytes) and of the result (the rest, any text)). `pack` is its one
writer, `expand` its one reader: records.py applies it to every job hash read, so every reader (JobRecord,
the inspector's views, the REST API, `tqc`, waiters) sees the fields a record written field by field holds
(`result`, `attempt` 1, `started`, `finished`, `worker`, `task`, `opts`, `payload`), and records written
before `ran`, or field by field (a name holding the separator, arguments not sent), read as they always did.
No Lua script reads a lean success's record but for its `state` (and `w`, a waiter's flag, kept apart).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FIELD = "ran"
SEP = "\x1f"


def pack(
    started: int | str, finished: int | str, worker: str, task: str, opts: str, args: str, result: str
) -> str | None:
    """The `ran` field, or None when a name or the options hold the separator, or the arguments are not
    ASCII (that end is written field by field)."""
    if SEP in worker or SEP in task or SEP in opts or not args.isascii():
        return None
    return f"{started}{SEP}{finished}{SEP}{worker}{SEP}{task}{SEP}{opts}{SEP}{len(args)}{SEP}{args}{result}"


def expand(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """A job hash (or an HMGET of named fields) with its `ran` unpacked into the fields it stands for; the
    row itself when it has none."""
    ran = row.get(FIELD)
    if not ran:
        return row
    parts = str(ran).split(SEP, 6)
    if len(parts) != 7 or not parts[5].isdigit():
        return row
    started, finished, worker, task, opts, size, rest = parts
    n = int(size)
    out = {k: v for k, v in row.items() if k != FIELD}
    out.update(
        result=rest[n:],
        attempt="1",
        started=started,
        finished=finished,
        worker=worker,
        task=task,
        payload=rest[:n],
    )
    if opts:
        out["opts"] = opts
    return out
