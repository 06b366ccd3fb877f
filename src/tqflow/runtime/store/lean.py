"""Lean jobs: a plain standalone job queued as its stream entry alone, with no job record.

Any key costs Redis ~90 bytes of its own, so a queued job without a delay, a deadline or a unique key
is only an entry `t=<task> p=<payload> [o=<options>] [l=<limits>]` on its queue's stream (level and
queue are the stream's, the enqueue time is the entry id's milliseconds). Its id names that entry,
`QUEUE.LEVEL.ENTRY_ID` (e.g. `default.2.1732751234567-0`), so it is found without an index.

Its first attempt needs no record either: the entry's delivery to a worker starts it (token `@ENTRY_ID`),
the entry pending under that worker fences it, and that worker's registry record is its lease. A success
writes the end alone (result, times, worker, task). Its record (`{ns}:job:ID`) is made from the entry only
when something needs one (a cancel, a move, recovery, an attempt running past a heartbeat, an end other
than success: `materialize` in lua/common.lua); from then on the record wins, as for any job. A waiter
only flags it (a record holding `w` and no state). So a lean job without a record is queued while its
entry is not pending, running (attempt 1) while it is, and gone once the entry is.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from tqflow.plan import LEVELS
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import level_pattern

LEAN_ID = re.compile(rf"^(.+)\.({level_pattern(LEVELS)})\.(\d+-\d+)$")  # mirrors lean_parts in lua/common.lua
# the same shape without groups: a yes/no asked per started job (the worker's heartbeat hook)
LEAN_SHAPE = re.compile(rf"^.+\.(?:{level_pattern(LEVELS)})\.\d+-\d+$")
URL_SAFE = re.compile(r"^[A-Za-z0-9_.:-]+$")  # queues whose jobs may be lean: the REST API's id characters


def lean_id(queue: str, level: int | str, entry: str) -> str:
    return f"{queue}.{level}.{entry}"


def parse(job_id: str) -> tuple[str, int, str] | None:
    """(queue, level, entry id) when the id has a lean job's shape (its entry may be gone)."""
    found = LEAN_ID.match(job_id)
    return (found[1], int(found[2]), found[3]) if found else None


def is_lean(job_id: str) -> bool:
    """Whether the id has a lean job's shape: `parse(job_id) is not None`, without building its parts."""
    return LEAN_SHAPE.match(job_id) is not None


def entry_job(queue: str, level: int, entry: str, fields: Mapping[str, Any] | None) -> str:
    """The job a stream entry stands for: its `j` field, or a lean entry's id ('' for neither)."""
    if not fields:
        return ""
    if "j" in fields:
        return str(fields["j"])
    return lean_id(queue, level, entry) if "t" in fields else ""


def first_attempt(queue: str, level: int, entry: str, fields: Mapping[str, Any] | None) -> list[Any] | None:
    """The attempt a lean entry's delivery started, as the start scripts answer it (lua/common.lua
    start_entry) but without asking Redis: job id, token `@ENTRY_ID`, attempt 1, task, payload, options,
    queue, level, enqueue ms, deadline (none), run (none). None for an entry that is not a lean job's (a
    `j` entry, or a malformed one) or that has limits (`l`: its start takes its slots): the start script
    decides those."""
    if not fields or "j" in fields or "t" not in fields or "l" in fields:
        return None
    opts = fields.get("o") or None
    row = [lean_id(queue, level, entry), f"@{entry}", 1, fields["t"], fields.get("p", ""), opts]
    return [*row, queue, str(level), entry.split("-")[0], None, None]


def options(o: Any, limits: Any) -> str:
    """A lean entry's options as one JSON text (what its record would hold): `o`, with `l` (its limits,
    kept apart on the entry: lua/enqueue.lua lean_split) put back as `lim`; '' for none. Mirrors lean_opts
    in lua/common.lua."""
    text = str(o or "")
    if not limits:
        return text
    if text in ("", "{}"):
        return f'{{"lim":{limits}}}'
    return f'{text[:-1]},"lim":{limits}}}'


def queue_lookup(pipe: Any, keys: Keys, job_id: str) -> bool:
    """Queue the reads of a lean job's entry and of its delivery (READS replies, before the record's read:
    a record is always written before its entry is deleted, so reading in this order never misses a job).
    False: not a lean id, nothing queued. Execute the pipeline with `raise_on_error=False` (the delivery's
    read fails while the stream has no consumer group: nothing was delivered) and pass its replies to
    `record`, which raises any other error."""
    where = parse(job_id)
    if where is None:
        return False
    queue, level, entry = where
    stream = keys.stream(queue, level)
    pipe.xrange(stream, entry, entry)
    pipe.xpending_range(stream, keys.group, entry, entry, 1)
    return True


READS = 2  # the replies queue_lookup adds for a lean id


def checked(reply: Any) -> Any:
    """A pipeline reply read with raise_on_error=False: the error it holds, raised."""
    if isinstance(reply, Exception):
        raise reply
    return reply


def record(
    job_id: str, entry_reply: Any, pending_reply: Any, now_ms: int | None = None
) -> dict[str, str] | None:
    """What a lean job without a record would hold, from its entry and delivery (queue_lookup's replies):
    queued, or running (its first attempt, since its delivery) while the entry is pending; None when the
    entry is gone."""
    where = parse(job_id)
    reply = checked(entry_reply)
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
    opts = options(fields.get("o"), fields.get("l"))
    if opts:
        row["opts"] = opts
    if isinstance(pending_reply, Exception) and "NOGROUP" not in str(pending_reply):
        raise pending_reply
    if pending_reply and not isinstance(pending_reply, Exception):
        delivery = pending_reply[0]
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        row.update(
            state="running",
            attempt="1",
            worker=str(delivery["consumer"]),
            started=str(now - int(delivery["time_since_delivered"])),
        )
    return row
