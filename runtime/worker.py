"""The worker: reads job entries from the queue streams, runs the tasks, reports each attempt.

Every state change goes through a Lua script fenced by the attempt's token (see lua/).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import traceback
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tqflow.compiler.plan import PRIORITIES, RetryPlan
from tqflow.runtime import codec
from tqflow.runtime.backoff import attempts_left, delay_ms
from tqflow.runtime.cluster.node import ClusterNode
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.expressions import Environment, ExpressionError, evaluate
from tqflow.runtime.hooks import AttemptEvent, OutcomeEvent, WorkerHooks
from tqflow.runtime.keys import Keys
from tqflow.runtime.runs import now_ms, run_environment
from tqflow.runtime.scripts import Scripts
from tqflow.runtime.task import Task

log = structlog.get_logger("tqflow.worker")


@dataclass
class WorkerSettings:
    queues: list[str] = field(default_factory=lambda: ["default"])
    concurrency: int = 10
    lease_ms: int = 30_000
    block_ms: int = 500
    max_promote_sleep: float = 1.0
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    cluster: ClusterSettings = field(default_factory=ClusterSettings)


class Worker:
    def __init__(
        self,
        redis: Redis,
        tasks: Mapping[str, Task[Any, Any]],
        namespace: str = "tqflow",
        settings: WorkerSettings | None = None,
        hooks: Sequence[WorkerHooks] = (),
    ) -> None:
        self.hooks = list(hooks)
        self.redis = redis
        self.tasks = dict(tasks)
        self.keys = Keys(namespace)
        self.scripts = Scripts(redis)
        self.settings = settings or WorkerSettings()
        self.streams = [s for q in self.settings.queues for s in self.keys.streams(q)]
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self.completed = 0
        self.cluster = ClusterNode(
            redis,
            self.keys,
            self.settings.name,
            self.settings.queues,
            self.settings.concurrency,
            self.settings.lease_ms,
            self.settings.cluster,
            lambda: len(self._running),
        )
        self.hooks.append(self.cluster.heartbeat)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, then let in-flight jobs finish."""
        await self._create_groups()
        await self.cluster.start()
        promoter = asyncio.create_task(self._promote_loop(stop))
        listener = asyncio.create_task(self._listen_for_wakeups(stop))
        log.info(
            "worker started", worker=self.settings.name, queues=self.settings.queues, tasks=len(self.tasks)
        )
        try:
            await self._fetch_loop(stop)
        finally:
            for helper in (promoter, listener):
                helper.cancel()
            await asyncio.gather(promoter, listener, return_exceptions=True)
            await self.cluster.shutdown(self._running)  # grace period, then hand back the rest
            log.info("worker stopped", worker=self.settings.name, completed=self.completed)

    async def _create_groups(self) -> None:
        for stream in self.streams:
            with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists already
                await self.redis.xgroup_create(stream, self.keys.group, id="0", mkstream=True)
        await self.redis.sadd(self.keys.queues, *self.settings.queues)

    async def _fetch_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._slots.acquire()
            self._slots.release()
            free = self._free_slots()
            reply = await self.redis.xreadgroup(
                self.keys.group,
                self.settings.name,
                dict.fromkeys(self.streams, ">"),
                count=free,
                block=self.settings.block_ms,
            )
            # Streams are listed from the highest priority down; keep that order.
            for stream, entries in self._by_priority(reply):
                for entry_id, fields in entries:
                    await self._slots.acquire()
                    job = asyncio.create_task(self._handle(stream, entry_id, fields.get("j", "")))
                    self._running.add(job)
                    job.add_done_callback(self._finished)

    def _by_priority(self, reply: Any) -> list[tuple[str, list[tuple[str, dict[str, str]]]]]:
        """XREADGROUP's reply, streams ordered from the highest priority down."""
        return sorted(reply or [], key=lambda r: self.streams.index(r[0]))

    def _free_slots(self) -> int:
        return max(1, self.settings.concurrency - len(self._running))

    def _finished(self, job: asyncio.Task[None]) -> None:
        self._running.discard(job)
        self._slots.release()
        if not job.cancelled() and job.exception() is not None:
            log.error("job handler crashed", error=repr(job.exception()))

    async def _handle(self, stream: str, entry_id: str, job_id: str) -> None:
        token = uuid.uuid4().hex
        raw = await self.scripts.start(
            keys=[self.keys.job(job_id)],
            args=[
                self.keys.prefix,
                now_ms(),
                job_id,
                stream,
                entry_id,
                self.settings.name,
                token,
                self.settings.lease_ms,
            ],
        )
        if not raw:
            return
        attempt = Attempt(job_id, token, json.loads(raw), self.settings.name)
        self._emit("attempt_started", attempt.event)
        bound = log.bind(
            job=job_id,
            run=attempt.info.get("run"),
            flow=attempt.info.get("flow"),
            task=attempt.task_name,
            attempt=attempt.number,
            worker=self.settings.name,
        )
        task = self.tasks.get(attempt.task_name)
        if task is None:
            bound.warning("unknown task")
            await self._finish(
                attempt,
                "dead",
                {"type": "UnknownTask", "message": f"this worker has no task `{attempt.task_name}`"},
            )
            return
        try:
            env = attempt.environment()
            if attempt.info.get("when") and not evaluate(json.loads(attempt.info["when"]), env):
                await self._finish(attempt, "skipped", "`when` condition is false")
                return
            kwargs = {name: evaluate(tree, env) for name, tree in json.loads(attempt.info["args"]).items()}
        except (ExpressionError, ValueError, KeyError) as err:
            await self._finish(attempt, "dead", {"type": "ArgumentError", "message": str(err)})
            return
        try:
            result = await self._call(task, kwargs, attempt.timeout)
        except Exception as err:  # the task failed: retry or dead-letter
            await self._failed(attempt, err, bound)
            return
        try:
            payload = codec.encode(result)
        except (TypeError, ValueError) as err:
            await self._finish(attempt, "dead", {"type": "ResultError", "message": str(err)})
            return
        await self._finish(attempt, "succeeded", payload)
        bound.debug("job succeeded")

    async def _call(self, task: Task[Any, Any], kwargs: dict[str, Any], timeout: float | None) -> Any:
        if task.is_async:
            return await asyncio.wait_for(task.fn(**kwargs), timeout)
        return await asyncio.wait_for(asyncio.to_thread(task.fn, **kwargs), timeout)

    async def _failed(self, attempt: Attempt, err: BaseException, bound: Any) -> None:
        error = {
            "type": type(err).__name__ if not isinstance(err, TimeoutError) else "Timeout",
            "message": str(err) or repr(err),
            "traceback": "".join(traceback.format_exception(err)),
            "attempt": attempt.number,
        }
        policy = attempt.retry
        if attempts_left(policy, attempt.number):
            due = now_ms() + delay_ms(policy, attempt.number)
            bound.info("job failed, will retry", error=error["message"], due=due)
            await self._finish(attempt, "retry", error, due=due)
        else:
            bound.warning("job failed for good", error=error["message"])
            await self._finish(attempt, "dead", error)

    async def _finish(self, attempt: Attempt, outcome: str, payload: Any, due: int = 0) -> None:
        text = (
            payload
            if isinstance(payload, str) and outcome in ("succeeded", "skipped")
            else (json.dumps(payload) if not isinstance(payload, str) else payload)
        )
        result = await self.scripts.finish(
            keys=[self.keys.job(attempt.job_id)],
            args=[self.keys.prefix, now_ms(), attempt.job_id, attempt.token, outcome, text, due],
        )
        self._emit("attempt_finished", attempt.outcome("stale" if result == "stale" else outcome, payload))
        if result == "stale":
            log.warning("attempt no longer ours; result dropped", job=attempt.job_id, attempt=attempt.number)
        else:
            self.completed += 1

    def _emit(self, name: str, event: AttemptEvent | OutcomeEvent) -> None:
        for hook in self.hooks:
            try:
                getattr(hook, name)(event)
            except Exception as err:  # a broken hook must not break job processing
                log.error("worker hook failed", hook=type(hook).__name__, error=repr(err))

    async def _promote_loop(self, stop: asyncio.Event) -> None:
        """Move due delayed jobs to their streams; sleep until the next due time or a wake-up."""
        while not stop.is_set():
            moved, next_due = await self.scripts.promote(
                keys=[self.keys.delayed], args=[self.keys.prefix, now_ms(), 500]
            )
            if moved >= 500:
                continue
            sleep = self.settings.max_promote_sleep
            if next_due >= 0:
                sleep = min(sleep, max(0.0, (next_due - now_ms()) / 1000))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), sleep)

    async def _listen_for_wakeups(self, stop: asyncio.Event) -> None:
        """A job delayed to earlier than the promoter's next wake-up publishes its due time."""
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self.keys.delayed_wake)
        try:
            while not stop.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    self._wake.set()
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]


class Attempt:
    """One try of one job, as the start script handed it to this worker."""

    def __init__(self, job_id: str, token: str, info: dict[str, Any], worker: str) -> None:
        self.job_id = job_id
        self.token = token
        self.info = info
        self.number = int(info["attempt"])
        self.task_name = str(info.get("task") or "")
        self.started_ms = now_ms()
        self.event = AttemptEvent(
            job_id=job_id,
            task=self.task_name,
            queue=str(info.get("queue") or ""),
            priority=PRIORITIES[int(info.get("prio") or 2)],
            attempt=self.number,
            worker=worker,
            run_id=str(info.get("run") or ""),
            flow=str(info.get("flow") or ""),
            waited_ms=max(0, self.started_ms - int(info.get("enqueued") or self.started_ms)),
        )

    def outcome(self, result: str, payload: Any) -> OutcomeEvent:
        error = payload if isinstance(payload, dict) else {}
        return OutcomeEvent(
            attempt=self.event,
            outcome=result,
            duration_ms=now_ms() - self.started_ms,
            error_type=error.get("type"),
            error_message=error.get("message"),
        )

    @property
    def retry(self) -> RetryPlan:
        raw = self.info.get("retry")
        return RetryPlan.model_validate_json(raw) if raw else RetryPlan()

    @property
    def timeout(self) -> float | None:
        ms = int(self.info.get("timeout_ms") or 0)
        return ms / 1000 if ms > 0 else None

    def environment(self) -> Environment:
        run_id = self.info.get("run") or ""
        outputs = {name: codec.decode(v) for name, v in (self.info.get("outputs") or {}).items()}
        params = codec.decode(self.info.get("params")) or {}
        created = int(run_id[:11], 16) if len(run_id) > 11 else now_ms()
        return Environment(params=params, outputs=outputs, run=run_environment(run_id, created))
