"""Lean jobs: a plain standalone job queued as its stream entry alone, with no job record.

Any key costs Redis ~90 bytes of its own, so a queued job without a delay, a deadline or a unique key
is only an entry `t=<task> p=<payload> [o=<options>]` on its queue's stream (level and queue are the
stream's, the enqueue time is the entry id's milliseconds). Its id names that entry,
`QUEUE.LEVEL.ENTRY_ID` (e.g. `default.2.1732751234567-0`), so it is found without an index. Its record
(`{ns}:job:ID`) is made from the entry when it starts or when anything else needs one (cancel,
reprioritize, aging, `result`, recovery: `materialize` in lua/common.lua); from then on the record wins,
as for any job. An entry is deleted when its job ends or moves, so an entry found is a queued job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tqflow.runtime.store.keys import Keys

LEAN_ID = re.compile(r"^(.+)\.([0-4])\.(\d+-\d+)$")  # mirrors lean_parts in lua/common.lua
URL_SAFE = re.compile(r"^[A-Za-z0-9_.:-]+$")  # queues whose jobs may be lean: the REST API's id characters


def lean_id(queue: str, level: int | str, entry: str) -> str:
    return f"{queue}.{level}.{entry}"


def parse(job_id: str) -> tuple[str, int, str] | None:
    """(queue, level, entry id) when the id has a lean job's shape (its entry may be gone)."""
    found = LEAN_ID.match(job_id)
    return (found[1], int(found[2]), found[3]) if found else None


def entry_job(queue: str, level: int, entry: str, fields: Mapping[str, Any] | None) -> str:
    """The job a stream entry stands for: its `j` field, or a lean entry's id ('' for neither)."""
    if not fields:
        return ""
    if "j" in fields:
        return str(fields["j"])
    return lean_id(queue, level, entry) if "t" in fields else ""


def queue_lookup(pipe: Any, keys: Keys, job_id: str) -> bool:
    """Queue the read of a lean job's entry (before the record's read: a record is always written
    before its entry is deleted, so reading in this order never misses a job). False: not a lean id."""
    where = parse(job_id)
    if where is None:
        return False
    queue, level, entry = where
    pipe.xrange(keys.stream(queue, level), entry, entry)
    return True


def record(job_id: str, reply: Any) -> dict[str, str] | None:
    """What a lean job's record would hold, from its entry (an XRANGE reply); None when it is gone."""
    where = parse(job_id)
    if where is None or not reply:
        return None
    eid, fields = reply[0]
    if eid != where[2] or not fields or "j" in fields or "t" not in fields:
        return None
    row = {
        "state": "queued",
        "task": str(fields["t"]),
        "payload": str(fields.get("p", "")),
        "queue": where[0],
        "prio": str(where[1]),
        "enqueued": eid.split("-")[0],
        "entry": eid,
    }
    if fields.get("o"):
        row["opts"] = str(fields["o"])
    return row
