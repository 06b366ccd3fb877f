"""The finisher: writes the ends of attempts, batched (finish_many.lua gets every attempt that ended
while the previous call was in flight), retried while Redis is away, fenced by each attempt's token."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog

from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls
from tqflow.runtime.worker.attempt import Attempt
from tqflow.runtime.worker.context import WorkerContext
from tqflow.runtime.worker.slots import Slots
from tqflow.runtime.worker.transient import is_transient

log = structlog.get_logger("tqflow.worker")
FINISH_RETRY_S = 10.0  # how long a stopping worker keeps retrying the ends of its attempts
# most attempt ends in one finish_many call: at most 11 arguments each (its job key and 10 ARGV; a lean
# success 3, store/calls.py finish_many's short form; 15 for a run job's, 14 ARGV) and a call cut at ~1,000
# arguments, as every script call is (docs/runtime.md; F11 watches it)
BATCH = 90
ARGUMENTS = 1000
# A lean job's end record keeps its arguments: sent back when small (reading them from the entry costs Redis
# an XRANGE, ≈ 5 µs a job), read there when large (or not plain ASCII: their bytes stay as the entry has them)
ARGS_SENT_BACK = 4096

# an attempt's end on its way: the finish_many row, the attempt, its outcome and what it ended with
Pending = tuple[list[str | int], Attempt, str, Any]


class Finisher:
    """Handlers post their attempts' ends here and return (they do not wait for the write): the end is
    written by the next finish_many call, and only once it landed do the hooks hear of it
    (`attempt_finished`: the heartbeat renews the attempt's lease until then, so it stays fenced and
    covered) and does `completed` count it. A stopping worker waits for `landed()` before it hands
    anything back (cluster/node.py), so every end posted is written, or retried as `_send` says, first."""

    def __init__(self, context: WorkerContext, slots: Slots) -> None:
        self.context = context
        self.slots = slots
        self.completed = 0
        self._pending: list[Pending] = []
        self._unlanded = 0  # ends posted and not yet answered by Redis
        self._all_landed = asyncio.Event()
        self._all_landed.set()
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()

    def post(self, attempt: Attempt, outcome: str, payload: Any, due: int = 0) -> None:
        """End `attempt` as `outcome` (written by the next batch; the handler need not wait)."""
        # the body is over: its slot can take the next job now
        self.slots.release(attempt.job_id, self.context.keys.partition)
        text = payload if isinstance(payload, str) else json.dumps(payload)
        fields: list[str | int] = [
            *(attempt.job_id, attempt.token, outcome, text, due, attempt.dead_letter),
            *(attempt.started_ms, attempt.task_name),  # what a lean job's first attempt writes at its end
        ]
        if attempt.token.startswith("@"):  # and its arguments and options, which its end record keeps
            args = attempt.payload
            sent = (
                isinstance(args, str)
                and len(args) <= ARGS_SENT_BACK
                and args.isascii()
                and args != calls.KNOWN
            )
            fields += [args if sent else "", attempt.raw_opts]
        elif attempt.known is not None:  # what its start read of the record: its end need not read it
            fields += calls.ends_known(attempt.known)
        pending = self._pending
        pending.append((fields, attempt, outcome, payload))
        if not self._unlanded:  # the first end not yet landed (the events' calls only when they change)
            self._all_landed.clear()
        self._unlanded += 1
        if len(pending) == 1:  # `run` waits only with nothing pending: the first end posted wakes it
            self._ready.set()

    async def landed(self) -> None:
        """Until every end posted so far was answered (written, refused as stale, or given up on)."""
        while self._unlanded:
            await self._all_landed.wait()

    def _answered(self, batch: list[Pending], results: list[Any]) -> None:
        """Redis answered a batch's ends ("stale": the attempt was no longer ours); the hooks hear them
        together, one dispatch a batch."""
        hooks = bool(self.context.hooks)
        ended = []
        for (_, attempt, outcome, payload), answer in zip(batch, results, strict=True):
            stale = str(answer) == "stale"
            if hooks:
                ended.append(attempt.outcome("stale" if stale else outcome, payload))
            if stale:
                log.warning(
                    "attempt no longer ours; result dropped", job=attempt.event.job_id, attempt=attempt.number
                )
            else:
                self.completed += 1
        if ended:
            self.context.emit_all("attempt_finished", ended)

    def close(self) -> None:
        """The worker stops: send what is pending, then end `run` (giving up after `FINISH_RETRY_S`)."""
        self._closing.set()
        self._ready.set()

    async def run(self) -> None:
        """Send the ends of attempts in batches: everything that ended while the last call was in flight."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._pending:
                cut = _cut(self._pending)
                batch, self._pending = self._pending[:cut], self._pending[cut:]
                try:
                    results = await self._send(batch)
                finally:
                    self._unlanded -= len(batch)
                    if not self._unlanded:
                        self._all_landed.set()
                self._answered(batch, results)
            if self._closing.is_set() and not self._pending:
                return

    async def _send(self, batch: list[Pending]) -> list[Any]:
        """One finish_many call, retried (on a new connection) while Redis is unreachable or says it is
        busy. F13: a finish that met a dead pooled connection (a Redis restart, CLIENT KILL) was dropped
        as "stale", and the job ran again after its lease on another worker. Retrying is safe: every
        finish is fenced by its attempt's token, so a retry of one that did land, or one whose lease ran
        out meanwhile, is refused ("stale") and changes nothing. Only a stopping worker gives up, after
        `FINISH_RETRY_S` of failures (its attempts then stay pending: lease recovery runs them again)."""
        attempts = [pending[0] for pending in batch]
        ttl = self.context.settings.result_ttl_ms
        pause, gave_up_at = 0.05, None
        while True:
            try:
                call = calls.finish_many(
                    self.context.keys, now_ms(), ttl, attempts, self.context.settings.name
                )
                return list(await self.context.scripts.run(call))
            except Exception as err:
                if not is_transient(err):  # a bug, not an outage: retrying would not help
                    log.error("finishing attempts failed", error=repr(err), count=len(batch))
                    return ["stale"] * len(batch)
                loop = asyncio.get_running_loop()
                if self._closing.is_set():
                    gave_up_at = gave_up_at or loop.time() + FINISH_RETRY_S
                    if loop.time() > gave_up_at:
                        log.error("finishing attempts failed; giving up", error=repr(err), count=len(batch))
                        return ["stale"] * len(batch)
                log.warning("finishing attempts failed; retrying", error=repr(err), count=len(batch))
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)


def _cut(pending: list[Pending]) -> int:
    """How many of the pending ends go in the next call: at most BATCH, and at most ARGUMENTS arguments
    (a job key and its fields each), at least one."""
    total = 3  # now, ttl, worker
    for n, (fields, *_) in enumerate(pending[:BATCH]):
        total += 1 + max(len(fields), 10)
        if total > ARGUMENTS:
            return max(n, 1)
    return min(len(pending), BATCH)
