"""Alerts: a job dead-lettered, a run failed, a worker lost, a queue whose oldest entry is too old.

An `AlertMonitor` polls Redis (through the Inspector) and sends each alert to the routes that want it.
Several monitors may run (one per worker, the API): each alert is claimed once with `SET NX` on its own
key, so it goes out once. Each route is rate limited: past `burst` alerts in `window` seconds the rest
are counted and one summary goes out at the end of the window, so a failure storm is one message.

Routes come from Python (`Route(CallbackSink(fn), kinds=..., flows=...)`) or a TOML file (see
`load_alert_settings` and docs/operations.md); a route with `flows` is how a flow declares where its
failures go.
"""

from __future__ import annotations

import asyncio
import contextlib
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from redis.asyncio import Redis

from tqflow.errors import SettingError
from tqflow.runtime.alert_sinks import CallbackSink, LogSink, Sink, WebhookSink
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.runs import now_ms
from tqflow.runtime.views import WorkerView

log = structlog.get_logger("tqflow.alerts")
KINDS = ("job_dead", "run_failed", "worker_lost", "queue_old")
RECENT_RUNS = 200  # failed runs are looked for among this many latest runs
DLQ_PAGE = 500
CLAIM_TTL_S = 7 * 86400


@dataclass(frozen=True)
class Alert:
    kind: str
    subject: str  # a job id, run id, worker name or queue:priority
    message: str
    flow: str = ""
    at: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            "flow": self.flow,
            "at": self.at,
            "details": self.details,
        }


class RateLimit:
    """At most `burst` alerts per `window` seconds; the rest become one summary per window."""

    def __init__(self, burst: int = 10, window: float = 60.0) -> None:
        if burst < 1 or window <= 0:
            raise SettingError(
                f"an alert rate limit needs burst >= 1 and window > 0, got burst={burst!r} window={window!r}"
            )
        self.burst, self.window = burst, window
        self.started, self.sent = 0.0, 0
        self.suppressed: list[Alert] = []

    def offer(self, alert: Alert, now: float) -> bool:
        if not self.suppressed and now - self.started >= self.window:
            self.started, self.sent = now, 0
        if self.sent < self.burst:
            self.sent += 1
            return True
        self.suppressed.append(alert)
        return False

    def summary(self, now: float, *, force: bool = False) -> dict[str, Any] | None:
        if not self.suppressed or (not force and now - self.started < self.window):
            return None
        kinds = Counter(a.kind for a in self.suppressed)
        flows = Counter(a.flow for a in self.suppressed if a.flow)
        count = len(self.suppressed)
        self.suppressed, self.started, self.sent = [], now, 0
        listed = ", ".join(f"{kind} x{n}" for kind, n in kinds.most_common())
        return {
            "kind": "summary",
            "suppressed": count,
            "by_kind": dict(kinds),
            "by_flow": dict(flows),
            "message": f"{count} more alerts within {self.window:g} s: {listed}",
        }


@dataclass
class Route:
    sink: Sink
    kinds: frozenset[str] = frozenset(KINDS)
    flows: frozenset[str] | None = None  # None: every flow (and alerts about no flow)
    limit: RateLimit = field(default_factory=RateLimit)

    def wants(self, alert: Alert) -> bool:
        return alert.kind in self.kinds and (self.flows is None or alert.flow in self.flows)


@dataclass
class AlertSettings:
    routes: list[Route]
    poll: float = 2.0  # seconds between checks
    queue_age_ms: int = 300_000  # a waiting entry older than this raises queue_old
    worker_lost_ms: int = 3_000  # no heartbeat for this long raises worker_lost (the cluster reaps at 5 s)


class AlertMonitor:
    def __init__(self, redis: Redis, namespace: str, settings: AlertSettings) -> None:
        self.inspector = Inspector(redis, namespace)
        self.redis: Any = redis
        self.keys = self.inspector.keys
        self.settings = settings
        self.sent: list[dict[str, Any]] = []  # what this monitor sent (for tests and `tqrun` output)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check()
            except Exception as err:  # Redis away for a moment: try again next time
                log.warning("alert check failed", error=repr(err))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.poll)
        await self.flush(force=True)

    async def check(self) -> list[Alert]:
        """Find new alerts, claim them, send them, then any summary that is due."""
        found = [
            *await self._dead_jobs(),
            *await self._failed_runs(),
            *await self._lost_workers(),
            *await self._old_queues(),
        ]
        claimed = [alert for alert in found if await self._claim(alert)]
        for alert in claimed:
            await self._dispatch(alert)
        await self.flush()
        return claimed

    async def _claim(self, alert: Alert) -> bool:
        ttl = CLAIM_TTL_S
        if alert.kind == "queue_old":  # raise it again each threshold period while the queue stays old
            ttl = max(1, self.settings.queue_age_ms // 1000)
        key = self.keys.alert_sent(alert.kind, alert.subject)
        return bool(await self.redis.set(key, alert.at, nx=True, ex=ttl))

    async def _dispatch(self, alert: Alert) -> None:
        now = asyncio.get_running_loop().time()
        for route in self.settings.routes:
            if route.wants(alert) and route.limit.offer(alert, now):
                await self._send(route.sink, alert.payload())

    async def flush(self, *, force: bool = False) -> None:
        now = asyncio.get_running_loop().time()
        for route in self.settings.routes:
            summary = route.limit.summary(now, force=force)
            if summary is not None:
                await self._send(route.sink, summary)

    async def _send(self, sink: Sink, payload: dict[str, Any]) -> None:
        try:
            await sink.send(payload)
            self.sent.append(payload)
        except Exception as err:  # a broken sink must not stop the others
            log.error("alert could not be sent", sink=repr(sink), kind=payload.get("kind"), error=repr(err))

    async def _cursor(self, name: str) -> int:
        """How far the monitors have read. Every cursor starts where the first monitor ever started,
        so nothing older alerts, and a dead-letter queue that appears later is read from that point."""
        start = now_ms()
        await self.redis.hsetnx(self.keys.alert_cursor, "start", start)
        start = int(await self.redis.hget(self.keys.alert_cursor, "start") or start)
        await self.redis.hsetnx(self.keys.alert_cursor, name, start)
        return int(await self.redis.hget(self.keys.alert_cursor, name) or start)

    async def _dead_jobs(self) -> list[Alert]:
        alerts = []
        for key in await self.inspector.dlq_keys():
            alerts += await self._dead_in(key)
        return alerts

    async def _dead_in(self, dlq_key: str) -> list[Alert]:
        cursor = f"dlq:{dlq_key}"
        since = await self._cursor(cursor)
        rows = await self.redis.zrangebyscore(dlq_key, since, "+inf", 0, DLQ_PAGE, withscores=True)
        if not rows:
            return []
        await self.redis.hset(self.keys.alert_cursor, cursor, int(rows[-1][1]))  # claims stop repeats
        alerts = []
        for job_id, score in rows:
            with contextlib.suppress(LookupError):
                job = await self.inspector.job(str(job_id))
                error = job.error or {}
                alerts.append(
                    Alert(
                        "job_dead",
                        job.id,
                        f"job {job.id} ({job.task}) dead-lettered after {job.attempt} attempts: "
                        f"{error.get('type', '')}: {error.get('message', '')}",
                        flow=job.flow,
                        at=int(score),
                        details={"run": job.run, "task": job.task, "queue": job.queue, "error": error},
                    )
                )
        return alerts

    async def _failed_runs(self) -> list[Alert]:
        since = await self._cursor("runs")
        runs = await self.inspector.recent_runs(RECENT_RUNS)
        return [
            Alert(
                "run_failed",
                run.id,
                f"run {run.id} of flow {run.flow} failed ({run.failed} job(s) dead-lettered)",
                flow=run.flow,
                at=run.finished or now_ms(),
                details={"version": run.version, "failed_jobs": run.failed},
            )
            for run in runs
            if run.state == "failed" and (run.finished or 0) >= since
        ]

    async def _lost_workers(self) -> list[Alert]:
        """A registered worker whose heartbeats stopped (or whose record expired); a worker outside
        the registry that holds jobs and has not read for as long."""
        return [
            Alert(
                "worker_lost",
                worker.name,
                f"worker {worker.name} holds {worker.running} job(s) and was silent for {worker.idle_ms} ms",
                at=now_ms(),
                details={
                    "queues": worker.queues,
                    "running": worker.running,
                    "idle_ms": worker.idle_ms,
                    **worker.info,
                },
            )
            for worker in await self.inspector.workers()
            if lost(worker, self.settings.worker_lost_ms)
        ]

    async def _old_queues(self) -> list[Alert]:
        overview = await self.inspector.queues()
        return [
            Alert(
                "queue_old",
                f"{level.queue}:{level.priority}",
                f"queue {level.queue} ({level.priority}): oldest entry waited {level.oldest_age_ms} ms",
                at=now_ms(),
                details={"waiting": level.waiting, "oldest_age_ms": level.oldest_age_ms},
            )
            for queue in overview.queues
            for level in queue.levels
            if (level.oldest_age_ms or 0) > self.settings.queue_age_ms
        ]


def lost(worker: WorkerView, silent_ms: int) -> bool:
    if worker.source == "registry":
        return worker.state == "dead" or (worker.idle_ms or 0) > silent_ms
    return worker.running > 0 and (worker.idle_ms or 0) > silent_ms


def load_alert_settings(path: Path) -> AlertSettings:
    """Read alert routes from a TOML file: `[alerts]` options and `[[alerts.route]]` tables."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise SettingError(f"{path}: {err}") from err
    section = data.get("alerts")
    if not isinstance(section, dict):
        raise SettingError(f"{path}: no [alerts] table")
    routes = [_route(raw, f"{path}: alerts.route[{i}]") for i, raw in enumerate(section.get("route", []))]
    if not routes:
        raise SettingError(f"{path}: no [[alerts.route]] (say where alerts go: webhook, callback or log)")
    return AlertSettings(
        routes=routes,
        poll=float(section.get("poll_seconds", 2.0)),
        queue_age_ms=int(float(section.get("queue_age_seconds", 300)) * 1000),
        worker_lost_ms=int(float(section.get("worker_lost_seconds", 3)) * 1000),
    )


def _route(raw: Any, where: str) -> Route:
    if not isinstance(raw, dict):
        raise SettingError(f"{where} must be a table")
    targets = [k for k in ("webhook", "callback", "log") if k in raw]
    if len(targets) != 1:
        raise SettingError(f"{where}: give exactly one of webhook, callback or log")
    sink: Sink
    if "webhook" in raw:
        sink = WebhookSink(str(raw["webhook"]), headers=raw.get("headers"))
    elif "callback" in raw:
        sink = CallbackSink.from_path(str(raw["callback"]))
    else:
        sink = LogSink(str(raw["log"]))
    kinds = frozenset(raw.get("on", KINDS))
    unknown = kinds - set(KINDS)
    if unknown:
        raise SettingError(f"{where}: unknown alert kind(s) {sorted(unknown)}; known: {', '.join(KINDS)}")
    flows = frozenset(raw["flows"]) if "flows" in raw else None
    limit = RateLimit(int(raw.get("burst", 10)), float(raw.get("window_seconds", 60)))
    return Route(sink, kinds, flows, limit)
