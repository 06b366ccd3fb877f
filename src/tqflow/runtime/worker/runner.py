"""The runner: runs each attempt the fetcher hands it in its own asyncio task, from its arguments
(decoded, or evaluated from a flow's expression trees) to its outcome, and asks the finisher to write it.
A failure asks `retries.decide` whether and when the job runs again."""

from __future__ import annotations

import asyncio
import functools
import json
import traceback
from collections.abc import Mapping
from typing import Any

import structlog

from tqflow.runtime import clock
from tqflow.runtime.executors import Executors, JobInterrupted, ProcessFailure, Running
from tqflow.runtime.expressions import Environment, ExpressionError, evaluate
from tqflow.runtime.fanout import fan_out
from tqflow.runtime.policies import Retry
from tqflow.runtime.retries import decide
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls, payloads
from tqflow.runtime.store.payloads import PayloadError, PayloadSettings
from tqflow.runtime.task import Task
from tqflow.runtime.validation import ArgumentError, validator
from tqflow.runtime.worker.attempt import Attempt
from tqflow.runtime.worker.context import WorkerContext
from tqflow.runtime.worker.finisher import Finisher
from tqflow.runtime.worker.slots import Slots
from tqflow.runtime.worker.transient import is_transient

log = structlog.get_logger("tqflow.worker")
JSON_TAG = payloads.CODECS["json"]  # a stored payload's first character when its codec is JSON
TREES_CACHED = 512  # distinct `args` and `when` texts kept parsed (a plan's jobs: the same every run)
SCALARS = (str, int, float, bool, type(None))


@functools.lru_cache(maxsize=TREES_CACHED)
def _tree(text: str) -> Any:
    """An expression tree's JSON text (a flow job's `when`), parsed once per distinct text (shared:
    `evaluate` only reads a tree)."""
    return json.loads(text)


@functools.lru_cache(maxsize=TREES_CACHED)
def _constant_arguments(text: str) -> dict[str, Any] | None:
    """A flow job's arguments when every one is a literal string, number, boolean or none (most plans'
    jobs: `c.noop(x=3)`), the same for every run: parsed once per distinct `args` text, copied a job. None
    when any is evaluated, or a literal list or object (each job then parses its own, as every job gets
    its own objects). What a bad text raises is not cached."""
    trees = json.loads(text)
    if not isinstance(trees, dict):
        return None
    constant = {}
    for name, tree in trees.items():
        if not (isinstance(tree, dict) and len(tree) == 1 and "lit" in tree and type(tree["lit"]) in SCALARS):
            return None
        constant[name] = tree["lit"]
    return constant


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": kind, "message": message}


class Runner:
    def __init__(
        self,
        context: WorkerContext,
        tasks: Mapping[str, Task[Any, Any]],
        slots: Slots,
        finisher: Finisher,
        executors: Executors,
    ) -> None:
        self.context = context
        self.tasks = tasks
        self.slots = slots
        self.finisher = finisher
        self.executors = executors
        self.active: dict[str, Running] = {}  # job id -> the call in progress
        self.in_flight: set[asyncio.Task[None]] = set()  # every attempt's handler, until it returns
        self._handlers: dict[str, tuple[Attempt, asyncio.Task[None]]] = {}
        self._cancel_asked: set[str] = set()  # handled here, cancelled before their body began

    # -- the attempts in progress ----------------------------------------------------------------

    def spawn(self, attempt: Attempt) -> asyncio.Task[None]:
        """Start handling `attempt` in its own task; it holds a slot until its body ends."""
        job = asyncio.create_task(self._handle(attempt))
        self.in_flight.add(job)
        job_id = attempt.job_id
        self.slots.take(job_id, self.context.keys.partition)
        self._handlers[job_id] = (attempt, job)
        job.add_done_callback(functools.partial(self._done, job_id=job_id))  # no Python frame of its own
        return job

    def _done(self, job: asyncio.Task[None], job_id: str) -> None:
        self.in_flight.discard(job)
        if self._handlers.get(job_id, (None, None))[1] is job:
            del self._handlers[job_id]
            self._cancel_asked.discard(job_id)
        self.slots.release(job_id, self.context.keys.partition)
        if not job.cancelled() and job.exception() is not None:
            log.error("job handler crashed", error=repr(job.exception()))

    def handled(self) -> set[str]:
        """The ids of the jobs whose attempt is being handled here."""
        return set(self._handlers)

    def thread_jobs(self) -> dict[asyncio.Task[None], Running]:
        """The handlers whose job runs in a thread right now, with their call."""
        found = {}
        for job_id, running in self.active.items():
            handler = self._handlers.get(job_id)
            if handler is not None and running.thread_id is not None:
                found[handler[1]] = running
        return found

    def cancel(self, job_id: str) -> None:
        """A running job was cancelled: stop its call (the handler then ends it as cancelled). One handled
        here whose body has not begun (a lean job's delivery started it, its arguments are being read) is
        ended as cancelled before its body runs."""
        if job_id not in self.active:
            if job_id in self._handlers:
                self._cancel_asked.add(job_id)
            return
        handler = self._handlers.get(job_id)
        if handler is not None:
            handler[0].cancelled = True
            handler[1].cancel()

    # -- one attempt -----------------------------------------------------------------------------

    def _finish(self, attempt: Attempt, outcome: str, payload: Any, due: int = 0) -> None:
        """Post the attempt's end to the finisher (its slot frees now; the write follows, batched)."""
        self.finisher.post(attempt, outcome, payload, due)

    async def _handle(self, attempt: Attempt) -> None:
        self.context.emit("attempt_started", attempt.event)
        try:
            await self._attempt(attempt)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self.active.pop(attempt.job_id, None)
            if is_transient(err):
                # Redis refused or was unreachable before the body ran (a full Redis refusing a fan-out's
                # children or a unique claim, F14): the job goes back, it is not the job's fault.
                log.warning(
                    "redis refused a job's start; it runs again later",
                    job=attempt.event.job_id,
                    error=repr(err),
                )
                error = _error("RedisUnavailable", f"{type(err).__name__}: {err}"[:500])
                self._finish(attempt, "retry", error, due=now_ms() + 1000)
                return
            # Whatever a bad record makes the worker raise ends the attempt here, dead-lettered with the
            # reason: an attempt nobody finishes keeps its lease renewed forever (F15).
            log.error("job handler crashed", job=attempt.event.job_id, error=repr(err))
            self._finish(attempt, "dead", _error("WorkerError", f"{type(err).__name__}: {err}"[:500]))

    async def _attempt(self, attempt: Attempt) -> None:
        if attempt.malformed:
            self._finish(attempt, "dead", _error("MalformedRecord", attempt.malformed))
            return
        task = self.tasks.get(attempt.task_name)
        if task is None:
            self._finish(
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
                version, raw = payloads.decode(attempt.payload, self.context.settings.payloads)
                given = raw or {}
                if version is not None:  # an unversioned payload is upgraded to nothing (Task.upgrade)
                    given = task.upgrade(version, given)
                kwargs = validator(task).validate(given)
        except (PayloadError, ArgumentError, ValueError, TypeError) as err:
            self._finish(attempt, "dead", _error(type(err).__name__, str(err)))
            return
        # without a timeout or a deadline there is no limit (time_left's answer, without its call)
        timeout = attempt.time_left() if attempt.timeout_ms or attempt.deadline_at else None
        if timeout is not None and timeout <= 0:
            self._finish(attempt, "dead", _error("DeadlineExceeded", "the job's deadline passed"))
            return
        if attempt.job_id in self._cancel_asked:
            self._finish(attempt, "cancelled", "cancelled before it started")
            return
        running = Running()
        self.active[attempt.job_id] = running
        try:
            if timeout is None:  # what clock.within does without a limit, one coroutine fewer a job
                result = await self._call(task, kwargs, running)
            else:
                result = await clock.within(self._call(task, kwargs, running), timeout)  # a test may move it
        except asyncio.CancelledError:
            if not attempt.cancelled:
                raise
            self._finish(attempt, "cancelled", "cancelled while running")
            return
        except Exception as err:  # the task failed (or timed out): retry or dead-letter
            await self._failed(attempt, err)
            return
        finally:
            self.active.pop(attempt.job_id, None)
        try:
            payload = payloads.encode(result, self._result_settings(attempt, task), None)
        except (TypeError, ValueError) as err:
            self._finish(attempt, "dead", _error("ResultError", str(err)))
            return
        self.finisher.post(attempt, "succeeded", payload)  # as _finish does, one call fewer a job

    async def _call(self, task: Task[Any, Any], kwargs: dict[str, Any], running: Running) -> Any:
        try:
            if self.executors.kind(task) == "async":  # as Executors.call runs it, one coroutine fewer
                return await task.fn(**kwargs)
            return await self.executors.call(task, kwargs, running)
        except JobInterrupted as err:
            if running.handing_back:  # a stopping worker interrupted it: the job goes back, not failed
                raise asyncio.CancelledError() from err
            raise TimeoutError(f"task `{task.name}` interrupted at its timeout") from err  # a thread job

    def _result_settings(self, attempt: Attempt, task: Task[Any, Any]) -> PayloadSettings:
        """A result is encoded with its task's codec and compression; a task without a codec gives its
        result the job's when the job's arguments chose msgpack or pickle, else the worker's."""
        if (
            attempt.is_child
        ):  # fan-out items' results are plain JSON: the parent's list is their bodies joined
            return payloads.DEFAULT
        chosen = task.options.codec
        payload = attempt.payload
        # arguments in JSON (their first character says so) leave the choice to the worker's settings
        if (
            chosen is None
            and attempt.run is None
            and not (isinstance(payload, str) and payload[:1] == JSON_TAG)
        ):
            form = payloads.form_of(attempt.payload)
            chosen = form[0] if form is not None and form[0] != "json" else None
        return self.context.settings.payloads.choose(chosen, task.options.compression)

    async def _run_arguments(self, attempt: Attempt, task: Task[Any, Any]) -> dict[str, Any] | None:
        """A flow job's arguments from its expression trees; None when it was skipped or fanned out. The
        run's environment (params, upstream outputs, `run.*`) is made only for a job that evaluates
        something: a `when`, a unique key, a fan-out or an argument that is not a plain literal."""
        run = attempt.run
        assert run is not None
        env: Environment | None = None
        settings = self.context.settings.payloads
        try:
            when = run.get("when")
            if when:
                env = attempt.environment(settings)
                if not evaluate(_tree(when), env):
                    self._finish(attempt, "skipped", "`when` condition is false")
                    return None
            if run.get("unique") and attempt.number == 1:
                env = env or attempt.environment(settings)
                if not await self._claim_unique(attempt, env):
                    return None
            if run.get("fan_out"):
                status = await fan_out(self.context, attempt, task, env or attempt.environment(settings))
                self.context.emit("attempt_finished", attempt.outcome(status, None))
                return None
            text = run["args"]
            constant = _constant_arguments(text) if isinstance(text, str) else None
            if constant is not None:
                kwargs = dict(constant)
            else:
                env = env or attempt.environment(settings)
                kwargs = {name: evaluate(tree, env) for name, tree in json.loads(text).items()}
        except ExpressionError as err:
            self._finish(attempt, "dead", _error("ArgumentError", str(err)))
            return None
        return validator(task).validate(kwargs)

    async def _claim_unique(self, attempt: Attempt, env: Any) -> bool:
        """A flow job's `unique` key, claimed by its first attempt; False when the job was ended here."""
        from tqflow.plan import UniquePlan
        from tqflow.runtime.store.keys import check_part

        run = attempt.run or {}
        plan = UniquePlan.model_validate_json(run["unique"])
        key = check_part("unique key", f"{run.get('flow')}.{run.get('name')}:{evaluate(plan.key, env)}")
        call = calls.claim_unique(
            self.context.keys, now_ms(), attempt.job_id, attempt.token, key, plan.within_ms, plan.conflict
        )
        status = str(await self.context.scripts.run(call))
        kind, _, holder = status.partition(":")
        if kind == "skip":
            self._finish(attempt, "skipped", f"job {holder} holds its unique key")
        elif kind == "reject":
            self._finish(attempt, "dead", _error("UniqueRejected", f"job {holder} holds its unique key"))
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
            self._finish(attempt, "retry", error, due=due)
        else:
            if decision.why:
                error["final"] = decision.why
            log.warning(
                "job failed for good",
                job=attempt.event.job_id,
                task=attempt.task_name,
                error=error["message"],
            )
            self._finish(attempt, "dead", error)
