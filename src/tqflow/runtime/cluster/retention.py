"""Retention: how long finished work stays in Redis, and the leader's pruning of finished runs.

- a finished standalone job's record: `keep_results` (WorkerSettings.result_ttl_ms, set by the finish script;
  a skipped dependent or a cancelled idle job gets it from `Keys.keep_results`, which each worker writes);
- attempt histories (runtime/attempts.py): `keep_history` (default: as results);
- runs: `keep_runs` after they end. The leader runs `prune_runs.lua` every `every_s`: each run that ended
  more than `keep_runs` ago is deleted with its job records, their attempt histories, fan-out children and
  its entry in the runs index, all in one script (`tqc status RUN` then says "no such run"). A run with a
  job still in a dead-letter queue stays until the job is replayed or purged (`tqc dlq purge`).
Dead-lettered standalone jobs never expire; they leave with `tqc dlq replay` or `tqc dlq purge`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tqflow.errors import SettingError
from tqflow.plan.durations import parse_compound
from tqflow.runtime.deployments import Deployments, FlowNotDeployed
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls, runrows
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts

log = structlog.get_logger("tqflow.retention")
DAY_MS = 86_400_000
PAGE = 200  # run ids read from the runs index per page
PAGES = 10  # pages looked at per pass (runs still going sit at the front of the index)
RUNS_PER_CALL = 50
ENV = {"results": "TQFLOW_KEEP_RESULTS", "history": "TQFLOW_KEEP_HISTORY", "runs": "TQFLOW_KEEP_RUNS"}


@dataclass(frozen=True)
class Retention:
    results_ms: int = DAY_MS
    history_ms: int | None = None  # None: as results
    runs_ms: int = 7 * DAY_MS

    @property
    def history(self) -> int:
        return self.results_ms if self.history_ms is None else self.history_ms


def retention_from(
    results: str | None, history: str | None, runs: str | None, environ: Mapping[str, str]
) -> Retention:
    """Durations from the command line, else TQFLOW_KEEP_RESULTS / _HISTORY / _RUNS, else the defaults
    (1d, as results, 7d). A duration is the language's: `90s`, `12h`, `7d`, `1d12h`."""

    def ms(given: str | None, name: str) -> int | None:
        text = given or environ.get(ENV[name]) or None
        if text is None:
            return None
        value = parse_compound(text, f"--keep-{name}")
        if value <= 0:
            raise SettingError(f"--keep-{name} must be longer than 0 (got {text!r})")
        return value

    return Retention(ms(results, "results") or DAY_MS, ms(history, "history"), ms(runs, "runs") or 7 * DAY_MS)


class Pruner:
    """The leader's pruning of finished runs (`prune_runs.lua`)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        keep_runs_ms: int,
        is_leader: Callable[[], bool],
        every_s: float = 10.0,
        control: Redis | None = None,
    ) -> None:
        self.redis, self.keys, self.keep_ms, self.is_leader, self.every_s = (
            redis,
            keys,
            keep_runs_ms,
            is_leader,
            every_s,
        )
        self.scripts = Scripts(redis)
        # the plans are in the control slot (a data partition's pruner reads them over its connection)
        self.deployments = Deployments(control if control is not None else redis, keys)
        self._names: dict[tuple[str, int], list[str]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.is_leader():
                try:
                    pruned = await self.prune()
                    if pruned:
                        log.info("pruned finished runs", runs=pruned)
                except (RedisError, OSError) as err:
                    log.warning("pruning runs failed; will retry", error=repr(err))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every_s)

    async def prune(self, now: int | None = None) -> int:
        """One pass: the runs that ended more than keep_runs ago are deleted. Returns how many."""
        now = now_ms() if now is None else now
        created_before = now - self.keep_ms  # a run ended after it was created: older ones only
        total = 0
        for page in range(PAGES):
            ids = [
                str(i)
                for i in await self.redis.zrangebyscore(
                    self.keys.runs, "-inf", created_before, start=page * PAGE, num=PAGE
                )
            ]
            if not ids:
                break
            async with self.redis.pipeline(transaction=False) as pipe:
                for run_id in ids:
                    runrows.queue_retention(pipe, self.keys, run_id)
                rows = await pipe.execute()
            due: list[tuple[str, list[str]]] = []
            for run_id, (state, finished, flow, version) in zip(ids, rows, strict=True):
                if state is None:
                    due.append((run_id, []))  # gone: the script drops it from the index
                elif state != "running" and finished and int(finished) + self.keep_ms <= now:
                    due.append((run_id, await self._job_names(str(flow), int(version or 0))))
            for start in range(0, len(due), RUNS_PER_CALL):
                batch = due[start : start + RUNS_PER_CALL]
                total += int(await self.scripts.run(calls.prune_runs(self.keys, now, self.keep_ms, batch)))
            if len(ids) < PAGE:
                break
        return total

    async def _job_names(self, flow: str, version: int) -> list[str]:
        if (flow, version) not in self._names:
            try:
                _, plan = await self.deployments.get(flow, version)
                self._names[(flow, version)] = list(plan.jobs)
            except FlowNotDeployed:
                self._names[(flow, version)] = []
        return self._names[(flow, version)]
