"""Acknowledged means replicated, when a deployment asks for it.

Redis replicates asynchronously: a submit that the master answered can be lost if the master dies before
its replicas received it (a failover promotes a replica without it). `?wait_replicas=N` on a Redis URL
(any scheme; or `TQFLOW_WAIT_REPLICAS=N` for URLs without it) makes every job submit and run start send
`WAIT N T` right after its script, on the same connection, and return only once N replicas acknowledged
it; `wait_timeout_ms=T` (default 1000) bounds the wait. When fewer answer in time the submit is *done*
(its jobs are queued on the master) but not known to be replicated: `NotReplicated` says so and carries
the ids, so a caller can check on them (`client.job(id)`) instead of submitting again. Worker-side writes
(starts, finishes) do not wait: a finish lost in a failover runs its job again (at least once).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tqflow.errors import ClientError, UsageError

ENV = "TQFLOW_WAIT_REPLICAS"
DEFAULT_TIMEOUT_MS = 1000
_ATTRIBUTE = "_tqflow_replication"


@dataclass(frozen=True)
class Replication:
    """How many replicas must acknowledge a submit (0: none, the default) and for how long to wait."""

    replicas: int = 0
    timeout_ms: int = DEFAULT_TIMEOUT_MS

    def command(self) -> tuple[str, int, int]:
        return ("WAIT", self.replicas, self.timeout_ms)


NONE = Replication()


class NotReplicated(ClientError):
    """A submit was done on the master but fewer replicas than asked acknowledged it in time: its jobs or
    run are queued, and may be lost if the master fails before they replicate."""

    def __init__(self, message: str, ids: Sequence[str] = (), acknowledged: int = 0, wanted: int = 0) -> None:
        super().__init__(message)
        self.ids, self.acknowledged, self.wanted = list(ids), acknowledged, wanted


def from_options(replicas: str | None, timeout_ms: str | None) -> Replication:
    """The URL's (or the environment's) options, checked (UsageError: what is wrong)."""
    text = replicas if replicas is not None else os.environ.get(ENV)
    if not text and timeout_ms is None:
        return NONE
    try:
        count = int(text or 0)
        wait = int(timeout_ms) if timeout_ms is not None else DEFAULT_TIMEOUT_MS
    except ValueError:
        raise UsageError(
            f"wait_replicas and wait_timeout_ms are whole numbers, got {text!r} and {timeout_ms!r}"
        ) from None
    if not 0 <= count <= 100:
        raise UsageError(f"wait_replicas must be 0-100, got {count}")
    if not 1 <= wait <= 60_000:
        raise UsageError(f"wait_timeout_ms must be 1-60000 (WAIT 0 would block forever), got {wait}")
    return Replication(count, wait)


def attach(client: Any, replication: Replication) -> None:
    if replication.replicas:
        setattr(client, _ATTRIBUTE, replication)


def of(client: Any) -> Replication:
    """What a client's submits wait for (a client made elsewhere waits for nothing)."""
    found = getattr(client, _ATTRIBUTE, NONE)
    return found if isinstance(found, Replication) else NONE


def check(replication: Replication, acknowledged: Any, ids: Sequence[str]) -> None:
    """Raise NotReplicated when WAIT's reply (the replicas that acknowledged) is short of the ask."""
    got = int(acknowledged)
    if got >= replication.replicas:
        return
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    raise NotReplicated(
        f"submitted {shown or 'nothing'} on the master, but {got} of {replication.replicas} replicas "
        f"acknowledged within {replication.timeout_ms} ms: queued, not known to survive a failover "
        "(check them with `tqc jobs show` / client.job before submitting again)",
        ids,
        got,
        replication.replicas,
    )
