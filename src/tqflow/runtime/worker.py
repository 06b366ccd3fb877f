"""The worker: takes jobs from the queue streams by priority weights, runs them, reports each attempt.

Every state change goes through a Lua script fenced by the attempt's token (see lua/). Reading and
starting is one script call for a whole batch (fetch.lua); ends of attempts are batched too (finish.lua
gets every attempt that ended while the previous call was in flight).

`Worker.run` starts its background loops (`background()`: promoter, wake-up and cancel listeners,
finisher, aging) and any `components` added by other subsystems, next to the fetch loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import socket
import traceback
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tqflow.plan import Priority, RetryPlan
from tqflow.runtime import catalog
from tqflow.runtime.cluster.node import ClusterNode
from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.connection import carry_bytes, pin
from tqflow.runtime.executors import Executors, JobInterrupted, ProcessFailure, Running
from tqflow.runtime.fanout import fan_out
from tqflow.runtime.hooks import AttemptEvent, OutcomeEvent, WorkerHooks
from tqflow.runtime.policies import Retry
from tqflow.runtime.priorities import FetchPlanner
from tqflow.runtime.retries import decide
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls, payloads
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.payloads import PayloadError, PayloadSettings
from tqflow.runtime.store.scripts import Scripts
from tqflow.runtime.task import Task, TaskOptions
from tqflow.runtime.validation import ArgumentError, validator

log = structlog.get_logger("tqflow.worker")
Component = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
DEFAULT_WEIGHTS = {"high": 8, "normal": 4, "low": 2, "batch": 1}


@dataclass
class WorkerSettings:
    queues: list[str] = field(default_factory=lambda: ["default"])
    concurrency: int = 10
    lease_ms: int = 30_000
    block_ms: int = 500
    max_promote_sleep: float = 1.0
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    # critical is always read first; the other levels share what is left by these weights
    weights: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    aging_ms: int = 60_000  # a normal/low/batch job that waited this long moves to `aging_to` (0: never)
    aging_to: str = "critical"
    result_ttl_ms: int = 86_400_000  # how long a finished standalone job's record stays (dead ones stay)
    keep_history_ms: int | None = None  # attempt histories (runtime/attempts.py); None: as result_ttl_ms
    keep_runs_ms: int = (
        7 * 86_400_000
    )  # finished runs and their jobs (cluster/retention.py; the leader prunes)
    payloads: PayloadSettings = field(default_factory=PayloadSettings)
    process_pool: int = 0  # processes for executor="process" tasks (0: one, started on first use)
    fetch_batch: int = 100  # most entries read in one fetch
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
        refuse_bytes_replies(redis)
        carry_bytes(redis)  # binary payload bodies (store/payloads.py)
        self.redis = redis
        self.tasks = dict(tasks)
        self.keys = Keys(namespace)
        pin(redis, namespace)  # a cluster connection goes to the node of this namespace's slot
        self.scripts = Scripts(redis)
        self.settings = settings or WorkerSettings()
        self.planner = FetchPlanner(self.keys, self.settings.queues, self.settings.weights)
        self.streams = self.planner.all_streams
        self.executors = Executors(self.settings.concurrency, self.settings.process_pool)
        self.components: list[Component] = []  # more background loops (cluster: heartbeats, recovery …)
        self.active: dict[str, Running] = {}  # job id -> the call in progress
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: dict[str, tuple[Attempt, asyncio.Task[None]]] = {}
        self._room = asyncio.Event()
        # Jobs holding a slot: from their start until their body ends. An attempt whose end is being written
        # no longer holds one (it stays fenced by its token and covered by its lease until the write lands).
        self._occupied: set[str] = set()
        self._culprits: set[str] = set()  # the job whose start made the fetch loop fail
        self._wake = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._finishing: list[tuple[list[str | int], asyncio.Future[str]]] = []
        self._finish_ready = asyncio.Event()
        self.completed = 0
        self.cluster = ClusterNode(
            redis,
            self.keys,
            self.settings.name,
            self.settings.queues,
            self.settings.concurrency,
            self.settings.lease_ms,
            self.settings.cluster,
            lambda: len(self._tasks),
            keep_runs_ms=self.settings.keep_runs_ms,
        )
        self.hooks.append(self.cluster.heartbeat)

    # -- the loops -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, then let in-flight jobs finish."""
        await catalog.publish(self.redis, self.keys, self.tasks, self.settings.name)  # runtime/catalog.py
        await self._create_groups()
        await self.scripts.ensure_loaded()
        await self.cluster.start()
        # What start-up made (modules, tasks, plans, pydantic models) stays for the process's life: leave it
        # out of every later collection, so the collector's passes scan only what jobs allocate.
        gc.freeze()
        finished = asyncio.Event()
        helpers = [asyncio.create_task(self._resilient(c, stop)) for c in self.background()]
        finisher = asyncio.create_task(self._finish_loop(finished))
        with contextlib.suppress(TimeoutError):  # cancellations sent from now on reach this worker
            await asyncio.wait_for(self._subscribed.wait(), 5)
        log.info(
            "worker started", worker=self.settings.name, queues=self.settings.queues, tasks=len(self.tasks)
        )
        blamed: set[str] = set()
        try:
            await self._resilient(self._fetch_loop, stop)
        except Exception:
            # The worker itself failed: blame the job it was starting, else the jobs it was running (F15).
            blamed = self._culprits or set(self._handlers)
            raise
        finally:
            # grace period, then hand back the rest
            await self.cluster.shutdown(self._tasks, blamed, self._thread_jobs)
            finished.set()
            self._finish_ready.set()
            await asyncio.gather(finisher, return_exceptions=True)
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self.executors.shutdown()
            log.info("worker stopped", worker=self.settings.name, completed=self.completed)

    async def _resilient(self, loop: Component, stop: asyncio.Event) -> None:
        """Run one loop; while Redis is unreachable (restarting, a network cut), wait and start it again.
        F5: a Redis restart used to end the fetch loop, and with it the worker, and kill the promoter."""
        pause = 0.1
        while not stop.is_set():
            try:
                await loop(stop)
                return
            except REDIS_DOWN as err:
                log.warning("redis unreachable; retrying", loop=loop.__name__, error=repr(err), pause=pause)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
                pause = min(pause * 2, 1.0)

    def background(self) -> list[Component]:
        loops: list[Component] = [self._promote_loop, self._listen, *self.components]
        if self.settings.aging_ms > 0:
            loops.append(self._aging_loop)
        return loops

    async def _create_groups(self) -> None:
        for stream in self.streams:
            with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists already
                await self.redis.xgroup_create(stream, self.keys.group, id="0", mkstream=True)
        await self.redis.sadd(self.keys.queues, *self.settings.queues)

    async def _fetch_loop(self, stop: asyncio.Event) -> None:
        token = uuid.uuid4().hex[:12]
        batch = failures = 0
        while not stop.is_set():
            free = min(self.settings.concurrency - len(self._occupied), self.settings.fetch_batch)
            if 0 < free < self.settings.concurrency // 2 and self._occupied:
                await asyncio.sleep(0.002)  # busy: let a few more slots free up, then fetch them in one call
                free = min(self.settings.concurrency - len(self._occupied), self.settings.fetch_batch)
            if free <= 0:
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), 1.0)
                continue
            batch += 1
            prefix = f"{token}.{batch}."
            plan = self.planner.plan(free)
            try:
                jobs = await self.scripts.run(
                    calls.fetch(
                        self.keys, now_ms(), self.settings.name, prefix, self.settings.lease_ms, free, plan
                    )
                )
                woken = False
                if not jobs:
                    jobs = await self._block_for_work(prefix, stop)
                    woken = bool(jobs)
                failures = 0
            except (RedisError, OSError) as err:
                # Redis unreachable or refusing: back off and retry. Attempts started by a reply we lost
                # are reclaimed when their lease runs out (at-least-once).
                failures += 1
                if "OOM" in str(err)[:4] or isinstance(err, OutOfMemoryError):
                    log.warning("redis is full (maxmemory): taking no new work", worker=self.settings.name)
                else:
                    log.warning("fetch failed; retrying", worker=self.settings.name, error=repr(err))
                if "NOGROUP" in str(err):
                    with contextlib.suppress(RedisError, OSError):
                        await self._create_groups()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), min(2.0, 0.05 * 2**failures))
                continue
            for job in jobs:
                try:
                    self._spawn(Attempt(job, self.settings.name))
                except Exception:
                    self._culprits.add(str(job[0]))
                    raise
            if woken:  # an idle worker's latency: let the job reach its first await before the next fetch
                await asyncio.sleep(0)

    async def _block_for_work(self, prefix: str, stop: asyncio.Event) -> list[Any]:
        """Nothing to read: block until an entry arrives on any stream, then start what arrived."""
        reply: Any = await self.redis.xreadgroup(
            self.keys.group,
            self.settings.name,
            dict.fromkeys(self.streams, ">"),
            count=1,
            block=self.settings.block_ms,
        )
        read = [
            (str((fields or {}).get("j", "")), stream, entry_id)
            for stream, entries in reply or []
            for entry_id, fields in entries
        ]
        if not read:
            return []
        call = calls.start_many(self.keys, now_ms(), self.settings.name, prefix, self.settings.lease_ms, read)
        return list(await self.scripts.run(call))

    def _spawn(self, attempt: Attempt) -> None:
        job = asyncio.create_task(self._handle(attempt))
        self._tasks.add(job)
        self._occupied.add(attempt.job_id)
        self._handlers[attempt.job_id] = (attempt, job)
        job_id = attempt.job_id
        job.add_done_callback(lambda done: self._done(done, job_id))

    def _done(self, job: asyncio.Task[None], job_id: str) -> None:
        self._tasks.discard(job)
        if self._handlers.get(job_id, (None, None))[1] is job:
            del self._handlers[job_id]
        self._release(job_id)
        if not job.cancelled() and job.exception() is not None:
            log.error("job handler crashed", error=repr(job.exception()))

    def _thread_jobs(self) -> dict[asyncio.Task[None], Running]:
        """The handlers whose job runs in a thread right now, with their call."""
        found = {}
        for job_id, running in self.active.items():
            handler = self._handlers.get(job_id)
            if handler is not None and running.thread_id is not None:
                found[handler[1]] = running
        return found

    def _release(self, job_id: str) -> None:
        self._occupied.discard(job_id)
        self._room.set()

    # -- one attempt -----------------------------------------------------------------------------

    async def _handle(self, attempt: Attempt) -> None:
        self._emit("attempt_started", attempt.event)
        try:
            await self._attempt(attempt)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self.active.pop(attempt.job_id, None)
            if _transient(err):
                # Redis refused or was unreachable before the body ran (a full Redis refusing a fan-out's
                # children or a unique claim, F14): the job goes back, it is not the job's fault.
                log.warning(
                    "redis refused a job's start; it runs again later", job=attempt.job_id, error=repr(err)
                )
                error = _error("RedisUnavailable", f"{type(err).__name__}: {err}"[:500])
                await self._finish(attempt, "retry", error, due=now_ms() + 1000)
                return
            # Whatever a bad record makes the worker raise ends the attempt here, dead-lettered with the
            # reason: an attempt nobody finishes keeps its lease renewed forever (F15).
            log.error("job handler crashed", job=attempt.job_id, error=repr(err))
            await self._finish(attempt, "dead", _error("WorkerError", f"{type(err).__name__}: {err}"[:500]))

    async def _attempt(self, attempt: Attempt) -> None:
        if attempt.malformed:
            await self._finish(attempt, "dead", _error("MalformedRecord", attempt.malformed))
            return
        task = self.tasks.get(attempt.task_name)
        if task is None:
            await self._finish(
                attempt, "dead", _error("UnknownTask", f"this worker has no task `{attempt.task_name}`")
            )
            return
        attempt.adopt(task.options)
        try:
            if attempt.run is not None:
                kwargs = await self._run_arguments(attempt, task)
                if kwargs is None:
                    return
            else:
                version, raw = payloads.decode(attempt.payload, self.settings.payloads)
                kwargs = validator(task).validate(task.upgrade(version, raw or {}))
        except (PayloadError, ArgumentError, ValueError, TypeError) as err:
            await self._finish(attempt, "dead", _error(type(err).__name__, str(err)))
            return
        timeout = attempt.time_left()
        if timeout is not None and timeout <= 0:
            await self._finish(attempt, "dead", _error("DeadlineExceeded", "the job's deadline passed"))
            return
        running = Running()
        self.active[attempt.job_id] = running
        try:
            result = await asyncio.wait_for(self._call(task, kwargs, running), timeout)
        except asyncio.CancelledError:
            if not attempt.cancelled:
                raise
            await self._finish(attempt, "cancelled", "cancelled while running")
            return
        except Exception as err:  # the task failed (or timed out): retry or dead-letter
            await self._failed(attempt, err)
            return
        finally:
            self.active.pop(attempt.job_id, None)
        try:
            payload = payloads.encode(result, self._result_settings(attempt, task), None)
        except (TypeError, ValueError) as err:
            await self._finish(attempt, "dead", _error("ResultError", str(err)))
            return
        await self._finish(attempt, "succeeded", payload)

    async def _call(self, task: Task[Any, Any], kwargs: dict[str, Any], running: Running) -> Any:
        try:
            return await self.executors.call(task, kwargs, running)
        except JobInterrupted as err:
            if running.handing_back:  # a stopping worker interrupted it: the job goes back, not failed
                raise asyncio.CancelledError() from err
            raise TimeoutError("interrupted") from err  # a thread stopped by its timeout

    def _result_settings(self, attempt: Attempt, task: Task[Any, Any]) -> PayloadSettings:
        """A result is encoded with its task's codec and compression; a task without a codec gives its
        result the job's when the job's arguments chose msgpack or pickle, else the worker's."""
        if (
            attempt.is_child
        ):  # fan-out items' results are plain JSON: the parent's list is their bodies joined
            return payloads.DEFAULT
        chosen = task.options.codec
        if chosen is None and attempt.run is None:
            form = payloads.form_of(attempt.payload)
            chosen = form[0] if form is not None and form[0] != "json" else None
        return self.settings.payloads.choose(chosen, task.options.compression)

    async def _run_arguments(self, attempt: Attempt, task: Task[Any, Any]) -> dict[str, Any] | None:
        """A flow job's arguments from its expression trees; None when it was skipped or fanned out."""
        run = attempt.run
        assert run is not None
        env = attempt.environment(self.settings.payloads)
        from tqflow.runtime.expressions import ExpressionError, evaluate

        try:
            if run.get("when") and not evaluate(json.loads(run["when"]), env):
                await self._finish(attempt, "skipped", "`when` condition is false")
                return None
            if run.get("unique") and attempt.number == 1 and not await self._claim_unique(attempt, env):
                return None
            if run.get("fan_out"):
                status = await fan_out(self, attempt, task, env)
                self._emit("attempt_finished", attempt.outcome(status, None))
                return None
            kwargs = {name: evaluate(tree, env) for name, tree in json.loads(run["args"]).items()}
        except ExpressionError as err:
            await self._finish(attempt, "dead", _error("ArgumentError", str(err)))
            return None
        return validator(task).validate(kwargs)

    async def _claim_unique(self, attempt: Attempt, env: Any) -> bool:
        """A flow job's `unique` key, claimed by its first attempt; False when the job was ended here."""
        from tqflow.plan import UniquePlan
        from tqflow.runtime.expressions import evaluate
        from tqflow.runtime.store.keys import check_part

        run = attempt.run or {}
        plan = UniquePlan.model_validate_json(run["unique"])
        key = check_part("unique key", f"{run.get('flow')}.{run.get('name')}:{evaluate(plan.key, env)}")
        call = calls.claim_unique(
            self.keys, now_ms(), attempt.job_id, attempt.token, key, plan.within_ms, plan.conflict
        )
        status = str(await self.scripts.run(call))
        kind, _, holder = status.partition(":")
        if kind == "skip":
            await self._finish(attempt, "skipped", f"job {holder} holds its unique key")
        elif kind == "reject":
            await self._finish(
                attempt, "dead", _error("UniqueRejected", f"job {holder} holds its unique key")
            )
        return kind in ("ok", "stale")

    async def _failed(self, attempt: Attempt, err: BaseException) -> None:
        if isinstance(err, TimeoutError):
            kind = "DeadlineExceeded" if attempt.deadline_hit() else "Timeout"
            error = _error(
                kind, f"the attempt ran longer than its {(kind == 'Timeout' and 'timeout') or 'deadline'}"
            )
        else:
            name = err.qualified_name if isinstance(err, ProcessFailure) else type(err).__name__
            error = _error(name, str(err) or repr(err))
            error["traceback"] = (
                err.remote_traceback
                if isinstance(err, ProcessFailure)
                else "".join(traceback.format_exception(err))
            )
        error["attempt"] = attempt.number
        requested = err.delay_ms if isinstance(err, Retry) else None
        decision = decide(attempt.retry, err, attempt.number, requested)
        due = now_ms() + decision.delay_ms
        if decision.retry and not (attempt.deadline_at and due >= attempt.deadline_at):
            await self._finish(attempt, "retry", error, due=due)
        else:
            if decision.why:
                error["final"] = decision.why
            log.warning(
                "job failed for good", job=attempt.job_id, task=attempt.task_name, error=error["message"]
            )
            await self._finish(attempt, "dead", error)

    async def _finish(self, attempt: Attempt, outcome: str, payload: Any, due: int = 0) -> str:
        self._release(attempt.job_id)  # the body is over: its slot can take the next job now
        text = payload if isinstance(payload, str) else json.dumps(payload)
        fields: list[str | int] = [attempt.job_id, attempt.token, outcome, text, due, attempt.dead_letter]
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._finishing.append((fields, future))
        self._finish_ready.set()
        try:
            result = await asyncio.shield(future)
        except asyncio.CancelledError:
            # Stopped while its end is on the way (shutdown): let it land first, so the job is not handed
            # back and run again after its body already ran to the end.
            await future
            raise
        self._emit("attempt_finished", attempt.outcome("stale" if result == "stale" else outcome, payload))
        if result == "stale":
            log.warning("attempt no longer ours; result dropped", job=attempt.job_id, attempt=attempt.number)
        else:
            self.completed += 1
        return result

    async def _finish_loop(self, finished: asyncio.Event) -> None:
        """Send the ends of attempts in batches: everything that ended while the last call was in flight."""
        while True:
            await self._finish_ready.wait()
            self._finish_ready.clear()
            while self._finishing:
                batch, self._finishing = self._finishing[:150], self._finishing[150:]
                results = await self._send_finishes(batch, finished)
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(str(result))
            if finished.is_set() and not self._finishing:
                return

    async def _send_finishes(
        self, batch: list[tuple[list[str | int], asyncio.Future[str]]], finished: asyncio.Event
    ) -> list[Any]:
        """One finish_many call, retried (on a new connection) while Redis is unreachable or says it is
        busy. F13: a finish that met a dead pooled connection (a Redis restart, CLIENT KILL) was dropped
        as "stale", and the job ran again after its lease on another worker. Retrying is safe: every
        finish is fenced by its attempt's token, so a retry of one that did land, or one whose lease ran
        out meanwhile, is refused ("stale") and changes nothing. Only a stopping worker gives up, after
        `FINISH_RETRY_S` of failures (its attempts then stay pending: lease recovery runs them again)."""
        attempts = [fields for fields, _ in batch]
        pause, gave_up_at = 0.05, None
        while True:
            try:
                return list(
                    await self.scripts.run(
                        calls.finish_many(self.keys, now_ms(), self.settings.result_ttl_ms, attempts)
                    )
                )
            except Exception as err:
                if not _transient(err):  # a bug, not an outage: retrying would not help
                    log.error("finishing attempts failed", error=repr(err), count=len(batch))
                    return ["stale"] * len(batch)
                loop = asyncio.get_running_loop()
                if finished.is_set():
                    gave_up_at = gave_up_at or loop.time() + FINISH_RETRY_S
                    if loop.time() > gave_up_at:
                        log.error("finishing attempts failed; giving up", error=repr(err), count=len(batch))
                        return ["stale"] * len(batch)
                log.warning("finishing attempts failed; retrying", error=repr(err), count=len(batch))
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

    def _emit(self, name: str, event: AttemptEvent | OutcomeEvent) -> None:
        for hook in self.hooks:
            try:
                getattr(hook, name)(event)
            except Exception as err:  # a broken hook must not break job processing
                log.error("worker hook failed", hook=type(hook).__name__, error=repr(err))

    # -- background ------------------------------------------------------------------------------

    async def _promote_loop(self, stop: asyncio.Event) -> None:
        """Move due delayed jobs to their streams; sleep until the next due time or a wake-up."""
        while not stop.is_set():
            try:
                moved, next_due = await self.scripts.run(calls.promote(self.keys, now_ms(), 500))
            except (RedisError, OSError) as err:  # keep promoting once Redis is back
                log.warning("promote failed; retrying", error=repr(err))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
                continue
            if moved >= 500:
                continue
            sleep = self.settings.max_promote_sleep
            if next_due >= 0:
                sleep = min(sleep, max(0.0, (next_due - now_ms()) / 1000))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), sleep)

    async def _listen(self, stop: asyncio.Event) -> None:
        """Wake-ups for the promoter (an earlier due time) and cancellations of running jobs."""
        while not stop.is_set():
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.keys.delayed_wake, self.keys.cancel_channel)
                self._subscribed.set()
                await self._check_cancel_flags()  # a cancellation sent while we were not subscribed
                while not stop.is_set():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None:
                        await self._check_cancel_flags()
                        continue
                    if message["channel"] == self.keys.cancel_channel:
                        self._cancel(str(message["data"]))
                    else:
                        self._wake.set()
            except (RedisError, OSError) as err:
                log.warning("pub/sub connection lost", error=repr(err))
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _check_cancel_flags(self) -> None:
        """The safety net under the cancel channel: look at the flag of every job running here."""
        ids = list(self.active)
        if not ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self.keys.job(job_id), "cancel")
            flags = await pipe.execute()
        for job_id, flag in zip(ids, flags, strict=True):
            if flag == "1":
                self._cancel(job_id)

    def _cancel(self, job_id: str) -> None:
        """A running job was cancelled: stop its call (the handler then ends it as cancelled)."""
        if job_id not in self.active:
            return
        handler = self._handlers.get(job_id)
        if handler is not None:
            handler[0].cancelled = True
            handler[1].cancel()

    async def _aging_loop(self, stop: asyncio.Event) -> None:
        """Move entries that waited past `aging_ms` to `aging_to` (any worker may; scripts are atomic)."""
        period = max(0.1, self.settings.aging_ms / 4000)
        top = int(Priority.parse(self.settings.aging_to))
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)
            call = calls.age(self.keys, now_ms(), self.settings.aging_ms, top, self.settings.queues)
            try:
                await self.scripts.run(call)
            except Exception as err:
                log.warning("aging failed", error=repr(err))


FINISH_RETRY_S = 10.0  # how long a stopping worker keeps retrying the ends of its attempts
# Replies of a Redis that will answer again soon: restarting, running a long script, failing over, full.
TRANSIENT_REPLIES = (
    *("LOADING", "BUSY", "TRYAGAIN", "READONLY"),
    *("MASTERDOWN", "CLUSTERDOWN", "OOM", "NOREPLICAS"),
)


def _transient(err: BaseException) -> bool:
    if isinstance(err, REDIS_DOWN):
        return True
    return isinstance(err, ResponseError) and str(err).startswith(TRANSIENT_REPLIES)


def _options(raw: Any) -> dict[str, Any]:
    if not raw:
        return {}
    opts = json.loads(raw)
    if not isinstance(opts, dict):
        raise ValueError(f"options are a {type(opts).__name__}, not an object")
    return opts


def refuse_bytes_replies(redis: Any) -> None:
    """A client that answers bytes (redis-py's default, without `decode_responses=True`) would make every
    reply compare unequal to the strings the worker expects: its jobs would look "running" forever."""
    pool = getattr(redis, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if isinstance(kwargs, dict) and not kwargs.get("decode_responses", False):
        raise ValueError(
            "the worker's Redis client answers bytes: create it with decode_responses=True, "
            "or use tqflow.runtime.connection.connect(url)"
        )


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": kind, "message": message}


class Attempt:
    """One try of one job, as the fetch or start script handed it to this worker.

    Parsing never raises (F15: one entry with `o={{{` raised here and crash-looped every worker): a field
    that does not parse leaves its default and sets `malformed` to the reason, and the worker dead-letters
    the attempt with it (`MalformedRecord`) instead of running it."""

    def __init__(self, row: Sequence[Any], worker: str) -> None:
        job_id, token, attempt, task, payload, opts, queue, prio, enqueued, deadline_at, run = row
        self.job_id = str(job_id)
        self.token = str(token)
        self.malformed: str | None = None
        self.number = int(attempt)  # HINCRBY's reply: always an integer
        self.task_name = str(task or "")
        self.payload = payload
        self.opts: dict[str, Any] = {}
        self.retry = RetryPlan()
        self.timeout_ms: int | None = None
        self.deadline_at: int | None = None
        self.run: dict[str, Any] | None = None
        level, waited_from = 2, None
        try:
            self.opts = _options(opts)
            raw_retry = self.opts.get("r")
            self.retry = RetryPlan.model_validate(raw_retry) if raw_retry else RetryPlan()
            self.timeout_ms = int(self.opts["t"]) if self.opts.get("t") else None
            self.deadline_at = int(deadline_at) if deadline_at else None
            level = int(prio or 2)
            if not 0 <= level < len(Priority):
                raise ValueError(f"priority level {level} out of range")
            waited_from = int(enqueued) if enqueued else None
            self.run = json.loads(run) if run else None
            if self.run is not None and not isinstance(self.run, dict):
                raise ValueError("run info is not an object")
        except Exception as err:  # anything a garbage field raises
            self.malformed = f"the job's record does not parse: {type(err).__name__}: {str(err)[:200]}"
            self.opts, self.retry, self.timeout_ms, self.deadline_at, self.run = (
                {},
                RetryPlan(),
                None,
                None,
                None,
            )
            level = level if 0 <= level < len(Priority) else 2
        self.cancelled = False
        # a fan-out item runs as a plain job (no run context); the start names its parent, run and flow
        self.is_child = self.run is not None and "parent" in self.run
        of = self.run if self.is_child else None
        if of is not None:
            self.run = None
        self.started_ms = now_ms()
        self.event = AttemptEvent(
            job_id=self.job_id,
            task=self.task_name,
            queue=str(queue or ""),
            priority=Priority.label_of(level),
            attempt=self.number,
            worker=worker,
            run_id=str((of or self.run or {}).get("of_run" if of else "run") or ""),
            flow=str((of or self.run or {}).get("flow") or ""),
            waited_ms=max(0, self.started_ms - (waited_from or self.started_ms)),
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

    def adopt(self, options: TaskOptions) -> None:
        """The task's own retry, timeout and dead-letter queue where the job sets none: a flow job whose
        plan gives none, a job sent by name before any worker published the task (runtime/catalog.py).
        A job that turned a retry off says so (`"r": {}`), so this never turns it back on."""
        if "r" not in self.opts and options.retry is not None:
            self.opts["r"] = options.retry.model_dump(mode="json", exclude_defaults=True)
            self.retry = options.retry
        if not self.opts.get("t") and options.timeout_ms:
            self.opts["t"] = options.timeout_ms
            self.timeout_ms = int(options.timeout_ms)
        if not self.opts.get("dlq") and options.dead_letter:
            self.opts["dlq"] = options.dead_letter

    @property
    def dead_letter(self) -> str:
        name = self.opts.get("dlq")
        return name if isinstance(name, str) else ""

    def time_left(self) -> float | None:
        """Seconds this attempt may run: its timeout, cut short by the job's deadline."""
        limits = []
        if self.timeout_ms:
            limits.append(self.timeout_ms / 1000)
        if self.deadline_at:
            limits.append((self.deadline_at - now_ms()) / 1000)
        return min(limits) if limits else None

    def deadline_hit(self) -> bool:
        return self.deadline_at is not None and now_ms() >= self.deadline_at - 5

    def environment(self, settings: PayloadSettings) -> Any:
        from tqflow.runtime.expressions import Environment
        from tqflow.runtime.runs import run_environment

        run = self.run or {}
        outputs = {name: payloads.value(v, settings) for name, v in (run.get("outputs") or {}).items() if v}
        params = json.loads(run["params"]) if run.get("params") else {}
        created = int(run.get("created") or now_ms())
        return Environment(params=params, outputs=outputs, run=run_environment(str(run.get("run")), created))
