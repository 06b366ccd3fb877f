"""The worker registry: each worker's record (node, queues, concurrency, version, jobs held), kept
alive by heartbeats that also renew the lease of every job the worker runs."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import structlog
from redis.asyncio import Redis

from tqflow.runtime import clock
from tqflow.runtime.clock import now_ms, sync_clock
from tqflow.runtime.cluster.contact import Contact
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.hooks import AttemptEvent, OutcomeEvent
from tqflow.runtime.store import calls, lean
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.store.scripts import Scripts

log = structlog.get_logger("tqflow.cluster")
PAGE = 500


def tqflow_version() -> str:
    try:
        return version("tqflow")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class WorkerRecord:
    name: str
    node: str
    pid: int
    queues: list[str]
    concurrency: int
    version: str
    started_ms: int
    heartbeat_ms: int
    jobs: list[str]
    alive: bool


class Heartbeat:
    """Registers the worker and heartbeats; a worker hook, so it knows which jobs the worker holds."""

    def __init__(
        self,
        redis: Redis,
        keys: ClusterKeys,
        name: str,
        queues: list[str],
        concurrency: int,
        lease_ms: int,
        settings: ClusterSettings,
    ) -> None:
        self.redis, self.keys, self.name, self.settings = redis, keys, name, settings
        self.lease_ms = lease_ms
        self.scripts = Scripts(redis)
        self.held: dict[str, float] = {}  # job id -> when its attempt started here (loop clock, s)
        self.contact = Contact(settings.dead_after_ms, settings.heartbeat_ms)  # what recovery may judge
        self._soon = asyncio.Event()
        self._static = {
            "name": name,
            "node": settings.node,
            "pid": str(os.getpid()),
            "queues": json.dumps(queues),
            "concurrency": str(concurrency),
            "version": tqflow_version(),
            "started": str(now_ms()),
            "lease": str(lease_ms),  # a lean job's first attempt has no record: this is its lease (lean.py)
        }

    # Worker hooks: a started attempt is renewed at once, so its lease is indexed from the start; but a lean
    # job's is renewed only once it ran a heartbeat period: its first attempt has no record (its entry,
    # pending here, is the attempt, and this worker's registry record its lease) and gets one only then;
    # a later attempt's start gave it a lease of lease_ms already.
    def attempt_started(self, event: AttemptEvent) -> None:
        local = event.local_id or event.job_id  # this partition's own id: its scripts renew its lease
        self.held[local] = time.monotonic()
        if not lean.is_lean(local):
            self._soon.set()

    def attempt_finished(self, event: OutcomeEvent) -> None:
        self.held.pop(event.attempt.local_id or event.attempt.job_id, None)

    async def beat(self) -> list[str]:
        """One heartbeat; returns the job ids this worker no longer holds (their attempts are void)."""
        await sync_clock(self.redis)  # F18: leases and ticks by Redis's clock, whatever this host's says
        ids = list(self.held)
        record = {**self._static, "jobs": json.dumps(ids[:100]), "running": str(len(ids))}
        young = time.monotonic() - self.settings.heartbeat_ms / 1000
        ids = [i for i, since in self.held.items() if since <= young or not lean.is_lean(i)]
        lost: list[str] = []
        for start in range(0, max(len(ids), 1), PAGE):
            call = calls.heartbeat(
                self.keys,
                now_ms(),
                self.name,
                self.settings.dead_after_ms,
                self.lease_ms,
                json.dumps(record),
                ids[start : start + PAGE],
            )
            lost += await self.scripts.run(call)
        self.contact.heard()
        for job_id in lost:
            if job_id in self.held:
                del self.held[job_id]
                log.warning(
                    "attempt lost its lease; its result will be refused", job=job_id, worker=self.name
                )
        return lost

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.beat()
            except Exception as err:  # Redis away: keep trying; recovery elsewhere handles the rest
                log.warning("heartbeat failed", worker=self.name, error=repr(err))
            self._soon.clear()
            # A stopping node sets `stop` once its jobs are over: end now, not a heartbeat later (that
            # second was most of the time every worker took to stop). On the runtime's clock: a test that
            # moves it gets the leases renewed at once (runtime/clock.py).
            await clock.wait((self._soon, stop), self.settings.heartbeat_ms / 1000)
            if not stop.is_set():
                await asyncio.sleep(0.05)  # batch the renewals of jobs started together

    async def deregister(self) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.worker(self.name))
            pipe.zrem(self.keys.workers, self.name)
            await pipe.execute()


async def list_workers(redis: Redis, keys: ClusterKeys) -> list[WorkerRecord]:
    """Every worker in the registry, alive or recently dead (its record expired)."""
    names = [str(n) for n in await redis.zrange(keys.workers, 0, -1)]
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.worker(name))
        rows: list[dict[str, Any]] = await pipe.execute()
    scored: Any = await redis.zrange(keys.workers, 0, -1, withscores=True)
    beats = dict(scored)
    return [_record(name, row, int(beats.get(name, 0))) for name, row in zip(names, rows, strict=True)]


def _record(name: str, row: dict[str, Any], last_beat: int) -> WorkerRecord:
    return WorkerRecord(
        name=name,
        node=str(row.get("node", "?")),
        pid=int(row.get("pid", 0)),
        queues=json.loads(row.get("queues", "[]")),
        concurrency=int(row.get("concurrency", 0)),
        version=str(row.get("version", "?")),
        started_ms=int(row.get("started", 0)),
        heartbeat_ms=int(row.get("heartbeat", last_beat)),
        jobs=json.loads(row.get("jobs", "[]")),
        alive=bool(row),
    )
