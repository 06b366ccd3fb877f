"""The producer side: deploy plans, start runs, submit standalone jobs, wait for them and read them back."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, overload

import structlog
from redis.asyncio import Redis
from typing_extensions import TypeVar

from tqflow.errors import RunNotFound, UsageError
from tqflow.plan import CatchupPlan, FlowPlan, Plan, Priority, RetryPlan
from tqflow.plan.durations import Duration
from tqflow.runtime import partitions
from tqflow.runtime.connection import carry_bytes, connect, pin
from tqflow.runtime.deployments import Deployed, Deployments
from tqflow.runtime.events import EventRun, emit
from tqflow.runtime.jobs import (
    BulkItem,
    BulkRejected,
    JobCancelled,
    JobFailed,
    JobId,
    JobNotFound,
    JobRejected,
    JobSkipped,
    Submitter,
    Unique,
    cancel_status,
    job_info,
    job_options,
    job_row,
    outcome,
    queue_job_read,
    refusal,
)
from tqflow.runtime.lifecycle import Backfilled, Lifecycle, Undeployed
from tqflow.runtime.limit_inspect import waiting_jobs
from tqflow.runtime.limits import LimitArg
from tqflow.runtime.partitioned import Layout, Part, item_placement, shown_run, submit_spread
from tqflow.runtime.partitions import RunPlaces
from tqflow.runtime.resume import Resumed, ResumeError, resume_run
from tqflow.runtime.runs import JobInfo, RunInfo, now_ms, read_run, start_run, wait_run
from tqflow.runtime.schedules import PREFIX as SCHEDULE_PREFIX
from tqflow.runtime.schedules import TRIGGER as SCHEDULE_TRIGGER
from tqflow.runtime.schedules import Schedule, ScheduleNotFound, schedule_flow, trigger_plan
from tqflow.runtime.schedules import describe as describe_schedule
from tqflow.runtime.schedules import flow_name as schedule_flow_name
from tqflow.runtime.signals import Signalled, WaitingSignal, send_signal, waiting_signals
from tqflow.runtime.store import calls, jobrows, lean, runrows
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.payloads import PayloadSettings
from tqflow.runtime.store.scripts import Scripts
from tqflow.runtime.task import Call, Task
from tqflow.runtime.waiter import Waiter

log = structlog.get_logger("tqflow.client")
R = TypeVar("R", default=Any)  # a job of a task named by a string: JobId[Any]


class Client:
    def __init__(
        self, redis: Redis, namespace: str = "tqflow", payload_settings: PayloadSettings | None = None
    ) -> None:
        self.redis = redis
        self.keys = Keys(namespace)
        carry_bytes(redis)  # a caller's client reads binary payload bodies (store/payloads.py)
        pin(redis, namespace)  # a cluster connection goes to the node of this namespace's slot
        self.scripts = Scripts(redis)
        self.deployments = Deployments(redis, self.keys)
        self.payload_settings = payload_settings or PayloadSettings()
        self.submitter = Submitter(redis, self.keys, self.scripts, self.payload_settings)
        self.waiter = Waiter(redis, self.keys, self.scripts)
        self.policy_differences: list[dict[str, Any]] = []  # of the last deploy (see `deploy`)
        self.lifecycle = Lifecycle(redis, self.keys, self.scripts, self.deployments)
        self.lifecycle.places = self._runs
        self.control = Part(None, redis, self.keys, self.scripts, self.payload_settings)
        self.control.submitter, self.control.waiter = self.submitter, self.waiter
        self._layout_cache: Layout | bool | None = None  # the namespace's partitions, read at first use
        self._run_places: RunPlaces | None = None

    async def _layout(self) -> Layout | None:
        """The namespace's data partitions (runtime/partitions.py), None for a namespace of one; read
        once per client (make a namespace's partitions before its first job)."""
        if self._layout_cache is None:
            count = await partitions.count_of(self.redis, self.keys)
            ns = self.keys.namespace
            self._layout_cache = Layout(self.redis, ns, count, self.payload_settings) if count > 1 else False
        return self._layout_cache if isinstance(self._layout_cache, Layout) else None

    async def _runs(self) -> RunPlaces:
        """Where this namespace's runs live (runtime/partitions.py `RunPlaces`); one per client, so its
        runs go round robin."""
        if self._run_places is None:
            layout = await self._layout()
            self._run_places = RunPlaces(self.control, layout.parts if layout else ())
        return self._run_places

    async def _parts(self) -> list[Part]:
        """Every partition that holds jobs: the control slot, then the data partitions."""
        layout = await self._layout()
        return [self.control, *(layout.parts if layout else [])]

    async def _at(self, job_id: str) -> tuple[Part, str]:
        """The partition of a job id, and the id its scripts know (a run's job, or any job of a namespace
        of one partition: the control slot and the id itself)."""
        layout = await self._layout()
        if layout is None or partitions.PARTITION_ID.match(job_id) is None:
            return self.control, job_id
        return layout.at(job_id)

    async def create_partitions(self, count: int) -> int:
        """Make this namespace one of `count` data partitions (docs/cluster.md); fixed once made (the same
        count again is accepted). Do it before the namespace's first standalone job."""
        made = await partitions.create(self.redis, self.keys, count)
        self._layout_cache = self._run_places = None
        return made

    async def partition_count(self) -> int:
        return await partitions.count_of(self.redis, self.keys)

    @classmethod
    def from_url(cls, url: str, namespace: str | None = None, **kwargs: Any) -> Client:
        namespace = namespace or os.environ.get("TQFLOW_NAMESPACE", "tqflow")
        return cls(connect(url, namespace=namespace), namespace, **kwargs)

    async def close(self) -> None:
        await self.waiter.close()
        if isinstance(self._layout_cache, Layout):
            await self._layout_cache.close()
        await self.redis.aclose()

    # -- flows and runs -------------------------------------------------------------------------

    async def deploy(self, plan: Plan) -> list[Deployed]:
        """Deploy a plan's flows. Where a flow job sets a retry, timeout, queue or dead-letter queue that
        differs from its task's own (as the workers published it), the flow's wins: each such job is logged
        as a warning and kept in `policy_differences`."""
        deployed = await self.deployments.deploy(plan)
        self.policy_differences = await self._policy_differences(plan)
        for difference in self.policy_differences:
            log.warning("a flow job overrides its task's own policy", **difference)
        return deployed

    async def _policy_differences(self, plan: Plan) -> list[dict[str, Any]]:
        jobs = [(flow, job) for flow in plan.flows.values() for job in flow.jobs.values()]
        catalog = self.submitter.catalog
        await catalog.load(self.redis, [job.task.name for _, job in jobs])
        out: list[dict[str, Any]] = []
        for flow, job in jobs:
            task = catalog.cached(job.task.name)
            if task is None:
                continue
            sets = {
                "queue": (job.queue, task.queue),
                "timeout_ms": (job.timeout_ms, task.timeout_ms),
                "dead_letter": (job.dead_letter, task.dead_letter),
                "retry": (
                    job.retry if job.retry.kind != "none" else None,
                    task.retry if task.retry is not None and task.retry.kind != "none" else None,
                ),
            }
            for setting, (flow_value, task_value) in sets.items():
                if flow_value is not None and task_value is not None and flow_value != task_value:
                    out.append(
                        {
                            "flow": flow.name,
                            "job": job.name,
                            "task": job.task.name,
                            "setting": setting,
                            "flow_value": str(flow_value),
                            "task_value": str(task_value),
                        }
                    )
        return out

    async def start_run(
        self, flow: str, params: Mapping[str, Any] | None = None, version: int | None = None
    ) -> str:
        """Start a run; in a namespace of several partitions it is pinned to the next data partition
        (round robin) and its id names it (`pK:…`)."""
        version_number, plan = await self.deployments.get(flow, version)
        place = (await self._runs()).pick()
        local = await start_run(place.redis, place.keys, place.scripts, plan, version_number, params)
        return place.shown(local)

    async def wait(self, run_id: str, timeout: float | None = None) -> RunInfo:
        place, local = (await self._runs()).at(run_id)
        await wait_run(place.redis, place.keys, local, timeout)
        return await self.run_info(run_id)

    async def run_info(self, run_id: str) -> RunInfo:
        place, local = (await self._runs()).at(run_id)
        found = await runrows.flow_version(place.redis, place.keys, local)
        if found is None:
            raise RunNotFound(f"no run {run_id} in namespace {self.keys.namespace}")
        _, plan = await self.deployments.get(*found)
        return shown_run(place, await read_run(place.redis, place.keys, local, plan))

    async def flow(self, name: str, version: int | None = None) -> tuple[int, FlowPlan]:
        return await self.deployments.get(name, version)

    async def resume(self, run_id: str, from_job: str | None = None) -> Resumed:
        """Re-run an ended run's jobs that did not succeed (or `from_job` and everything downstream of it)
        on the run's own version, keeping the others' outputs; the run is running again."""
        place, local = (await self._runs()).at(run_id)
        done = await resume_run(place.redis, place.keys, place.scripts, self.deployments, local, from_job)
        return dataclasses.replace(done, run_id=run_id)

    async def signal(self, run_id: str, name: str, payload: Any) -> Signalled:
        """Send `payload` to the run's signal job `name`: it becomes the job's result (`name.out`). Checked
        against the job's type first (SignalPayloadError, the job keeps waiting); sent before the run
        reaches the job, it is kept and delivered when it does (status `kept`). A job that received one,
        timed out or was skipped refuses it (SignalRefused)."""
        place, local = (await self._runs()).at(run_id)
        sent = await send_signal(
            place.redis,
            place.keys,
            place.scripts,
            self.deployments,
            local,
            name,
            payload,
            self.payload_settings.max_bytes,
        )
        return dataclasses.replace(sent, run_id=run_id)

    async def emit(self, name: str, data: Any = None) -> list[EventRun]:
        """Send event `name`: each deployed flow with `schedule event "NAME"` starts a run, with `event` =
        `data` in the trigger's params and key (EventError when one cannot read it: nothing starts). A
        trigger's `key` seen within its window starts none (status `duplicate`, the first run's id)."""
        return await emit(self.redis, self.keys, self.deployments, name, data, await self._runs())

    async def waiting_signals(self, run_id: str | None = None, limit: int = 100) -> list[WaitingSignal]:
        """Signal jobs awaiting their payload now, oldest first (one run's with `run_id`)."""
        places = await self._runs()
        if run_id is not None:
            place, local = places.at(run_id)
            found = await waiting_signals(place.redis, place.keys, self.deployments, local, limit)
            return [dataclasses.replace(w, run_id=place.shown(w.run_id)) for w in found]
        out: list[WaitingSignal] = []
        for place in places.all:  # oldest first over every partition
            found = await waiting_signals(place.redis, place.keys, self.deployments, None, limit)
            out += [dataclasses.replace(w, run_id=place.shown(w.run_id)) for w in found]
        return sorted(out, key=lambda w: w.since_ms)[:limit]

    async def pause(self, flow: str) -> int:
        """Stop the flow's schedules (runs can still be started by hand); returns its current version."""
        return await self.lifecycle.pause(flow)

    async def unpause(self, flow: str) -> int:
        """Restart the flow's schedules; ticks missed while paused follow each trigger's catch-up policy."""
        return await self.lifecycle.unpause(flow)

    async def undeploy(self, flow: str, *, cancel_runs: bool = False) -> Undeployed:
        """Remove the flow: no new runs or ticks; runs in progress end on their version, or are cancelled."""
        gone = await self.lifecycle.undeploy(flow)
        if not cancel_runs:
            return gone
        cancelled = [run_id for run_id in gone.running if await self.cancel_run(run_id)]
        return Undeployed(gone.flow, gone.version, running=[], cancelled=cancelled)

    def backfill(
        self, flow: str, from_ms: int, to_ms: int, *, schedule: str | None = None, rate: float = 10.0
    ) -> AsyncIterator[Backfilled]:
        """Start the runs that a schedule's ticks in [from_ms, to_ms] would have started, each tick once."""
        return self.lifecycle.backfill(flow, from_ms, to_ms, schedule, rate)

    # -- schedules (runtime/schedules.py) ------------------------------------------------------

    async def schedule(
        self,
        task: Task[Any, Any] | Call[Any] | str,
        /,
        *,
        cron: str | None = None,
        every: Duration | None = None,
        at: str | None = None,
        tz: str = "UTC",
        name: str | None = None,
        args: Mapping[str, Any] | None = None,
        queue: str | None = None,
        priority: str | None = None,
        retry: RetryPlan | None = None,
        timeout: Duration | None = None,
        deadline: Duration | None = None,
        dead_letter: str | None = None,
        catchup: str | CatchupPlan = "none",
        overlap: str = "skip",
        on_dst_gap: str = "shift",
        on_dst_repeat: str = "first",
    ) -> Schedule:
        """Run a task on a schedule: `cron` (5 fields, or 6 with seconds first) in time zone `tz`,
        `every` (a duration, aligned to the epoch) or once `at` (ISO 8601). The leader fires each tick
        once, as a flow's schedule: missed ticks follow `catchup` (none, all, last(N), all(within=1h)), a
        tick while the last run still goes follows `overlap` (skip, queue, allow), and DST days follow
        `on_dst_gap` (shift, skip) and `on_dst_repeat` (first, both). `name` defaults to the task's;
        scheduling a name again replaces that schedule (its ticks go on from where they were)."""
        if isinstance(task, Call):
            task_name = task.task.name
        else:
            task_name = task.name if isinstance(task, Task) else str(task)
        trigger = trigger_plan(
            cron=cron,
            every=every,
            at=at,
            tz=tz,
            catchup=catchup,
            overlap=overlap,
            on_dst_gap=on_dst_gap,
            on_dst_repeat=on_dst_repeat,
        )
        published = None
        if isinstance(task, str):  # its workers' published policies and parameters
            await self.submitter.catalog.load(self.redis, (task,))
            published = self.submitter.catalog.cached(task)
        schedule_name = name or task_name
        flow = schedule_flow(
            schedule_name,
            task,
            args or {},
            trigger,
            published,
            queue=queue,
            priority=priority,
            retry=retry,
            timeout=timeout,
            deadline=deadline,
            dead_letter=dead_letter,
        )
        await self.deployments.deploy_flow(flow)
        return await self.schedule_info(schedule_name)

    async def schedules(self) -> list[Schedule]:
        """Every schedule made with `schedule`, by name."""
        names = [n for n in await self.deployments.names() if n.startswith(SCHEDULE_PREFIX)]
        found = []
        for flow in names:
            try:
                found.append(await self.schedule_info(flow.removeprefix(SCHEDULE_PREFIX)))
            except ScheduleNotFound:
                continue  # removed meanwhile
        return found

    async def schedule_info(self, name: str) -> Schedule:
        """One schedule, with its next tick and what it fired last; ScheduleNotFound when there is none."""
        flow = schedule_flow_name(name)
        current, paused = await self.redis.hmget(self.keys.flow(flow), "current", "paused")
        if current is None:
            raise ScheduleNotFound(f"no schedule {name!r} in namespace {self.keys.namespace}")
        version, plan = await self.deployments.get(flow, int(str(current)))
        state = await self.redis.hgetall(ClusterKeys(self.keys).trigger(flow, SCHEDULE_TRIGGER))
        fields = {str(k): v for k, v in state.items()}
        return describe_schedule(name, version, plan, paused is not None, fields, now_ms())

    async def unschedule(self, name: str) -> Schedule:
        """Remove a schedule: no more ticks (runs in progress go on); returns it as it was."""
        gone = await self.schedule_info(name)
        await self.lifecycle.undeploy(gone.flow)
        await self.redis.delete(ClusterKeys(self.keys).trigger(gone.flow, SCHEDULE_TRIGGER))
        return gone

    # -- standalone jobs ------------------------------------------------------------------------

    async def enqueue(
        self,
        task: Task[Any, R] | Call[R] | str,
        /,
        *,
        queue: str | None = None,
        priority: str | None = None,
        delay: Duration | None = None,
        retry: RetryPlan | None = None,
        unique: Unique | None = None,
        timeout: Duration | None = None,
        deadline: Duration | None = None,
        dead_letter: str | None = None,
        limit: LimitArg | None = None,
        fair_key: str | int | None = None,
        weight: float | None = None,
        codec: str | None = None,
        compression: str | None = None,
        depends_on: Sequence[str] | None = None,
        allow_failure: bool | None = None,
        keep_result: bool | None = None,
        **kwargs: Any,
    ) -> JobId[R]:
        """Submit one job of a task (a Task, `task.call(...)`, or a registered task name); its id, typed
        with the task's result (`JobId[Any]` for a name). Every other keyword is an argument of the task.

        The options (the one definition both clients share: `SyncClient` takes these signatures):
        queue, priority (a `Priority` name), delay, retry (a `RetryPlan`), unique (a `Unique`: with
        conflict=skip the id is the existing job's, conflict=reject raises JobRejected), timeout, deadline
        and dead_letter (the dead-letter queue), limit (a `Limiter`, `limiter.by(key)` or a list of them:
        the job waits, without a worker and without counting an attempt, until each admits it),
        fair_key and weight (jobs of one queue and priority are served in weighted round robin across
        their keys instead of first come, first served), codec (json, msgpack, pickle) and compression
        (none, zlib, zstd) of the arguments; each overrides the task's own. depends_on: job ids this job
        waits for; it runs once they all succeeded and is skipped when one did not (dead-lettered,
        cancelled, skipped), or with allow_failure=True runs once they ended, whatever their state.
        keep_result=False: nobody reads the result, so a success at the first attempt that no one waits for
        writes no end record (the job then reads as not found); default: the task's (`@task(keep_result=…)`).
        """
        options = job_options(locals())
        if isinstance(task, str):  # sent by name: its workers' published policies and parameters
            await self.submitter.catalog.load(self.redis, (task,))
        layout = await self._layout()
        part = self.control
        if layout is not None:  # a namespace of several partitions: the job's own (partitions.py)
            part, options = layout.place(options, unique.key if unique is not None else None)
        job = self.submitter.prepare(task, kwargs, options)
        try:
            [result] = await part.submitter.submit([job], atomic=True)
        except BulkRejected as err:
            err.results = [part.rename(r) for r in err.results]
            raise refusal(err) from None
        return part.rename(result)

    async def enqueue_many(
        self,
        calls: Sequence[BulkItem],
        *,
        atomic: bool = True,
        queue: str | None = None,
        priority: str | None = None,
        delay: Duration | None = None,
        retry: RetryPlan | None = None,
        timeout: Duration | None = None,
        deadline: Duration | None = None,
        dead_letter: str | None = None,
        limit: LimitArg | None = None,
        fair_key: str | int | None = None,
        weight: float | None = None,
        codec: str | None = None,
        compression: str | None = None,
        depends_on: Sequence[str] | None = None,
        allow_failure: bool | None = None,
        keep_result: bool | None = None,
    ) -> list[JobId[Any]]:
        """Submit many jobs: `task.call(...)` values, `(task_or_name, kwargs)` pairs, or triples whose third
        item overrides options for that job (`{"unique": Unique(...), "priority": "high"}`); the options
        are `enqueue`'s but `unique` (a per-job override).

        atomic=True: all or nothing in one atomic step (BulkRejected says which job failed and why).
        atomic=False: each job on its own; each result has a `status` (ok, skipped, rejected, error).
        """
        options = job_options(locals())
        await self.submitter.catalog.load(self.redis, self.submitter.names(None, calls))
        layout = await self._layout()
        if layout is None:
            return await self.submitter.submit(self.submitter.prepare_many(calls, options, atomic), atomic)
        placed = [item_placement(item, options, layout.count) for item in calls]
        jobs = self.submitter.prepare_many([item for _, item in placed], options, atomic)
        return await submit_spread(layout, jobs, [home for home, _ in placed], atomic)

    @overload
    async def result(self, job_id: JobId[R], timeout: float | None = None) -> R: ...

    @overload
    async def result(self, job_id: str, timeout: float | None = None) -> Any: ...

    async def result(self, job_id: str, timeout: float | None = None) -> Any:
        """Wait for a job to end and return its result; JobFailed (with the error and traceback) when it
        was dead-lettered, JobCancelled / JobSkipped, TimeoutError after `timeout` seconds."""
        part, local = await self._at(job_id)
        state = await part.waiter.wait(local, timeout)
        if state is None:
            raise TimeoutError(f"job {job_id} did not finish within {timeout} s")
        return outcome(job_id, await self.job(job_id))

    async def job(self, job_id: str) -> JobInfo:
        part, local = await self._at(job_id)
        async with part.redis.pipeline(transaction=False) as pipe:
            is_lean = queue_job_read(pipe, part.keys, local)
            replies = await pipe.execute(raise_on_error=False)
        return job_info(job_id, job_row(local, replies, is_lean), self.payload_settings)

    # -- operations: cancel, reprioritize, dead-letter queues ---------------------------------------

    async def cancel(self, job_id: str, reason: str = "cancelled by request") -> str:
        """Cancel a job: `cancelled` (it had not started), `cancelling` (its worker is told to stop it;
        it ends as cancelled), or the state it had already ended in. Its dependents follow the skip rules."""
        part, local = await self._at(job_id)
        reply = await part.scripts.run(calls.cancel(part.keys, now_ms(), reason, [local]))
        return cancel_status(job_id, reply)

    async def cancel_run(self, run_id: str) -> str:
        """Cancel a run: every job that has not ended is cancelled; the run ends `cancelled`. Returns
        `cancelled`, `cancelling` (jobs still running are being stopped; the run ends cancelled when they
        have) or the state the run had already ended in."""
        info = await self.run_info(run_id)
        place, local = (await self._runs()).at(run_id)
        state = await place.scripts.run(calls.cancel_run(place.keys, now_ms(), local, list(info.jobs)))
        return "cancelling" if state == "running" else str(state)

    async def reprioritize(self, job_id: str, priority: str) -> str:
        """Change the priority of a job that has not started: `moved` (a queued job, to the end of its new
        level) or `updated` (scheduled, retrying or waiting); ValueError for a job that started or ended."""
        level = int(Priority.parse(priority))
        part, local = await self._at(job_id)
        [status] = await part.scripts.run(calls.reprioritize(part.keys, now_ms(), level, [local]))
        if status == "missing":
            raise JobNotFound(f"no job {job_id}")
        if status not in ("moved", "updated"):
            raise UsageError(f"job {job_id} is {status}: only a job that has not started can change priority")
        return str(status)

    async def dead_letters(
        self, queue: str | None = None, limit: int = 100, task: str | None = None
    ) -> list[JobInfo]:
        """Dead-lettered jobs, newest first (optionally only those of one task)."""
        rows: list[tuple[float, str]] = []
        for part in await self._parts():  # newest first over every partition
            key = part.keys.dead_letter(queue)
            found_ids: Any = await part.redis.zrevrange(key, 0, max(0, limit * 10 - 1), withscores=True)
            rows += [(float(score), part.shown(str(job_id))) for job_id, score in found_ids]
        ids = [job_id for _, job_id in sorted(rows, key=lambda row: -row[0])]
        found: list[JobInfo] = []
        for job_id in ids:
            try:
                info = await self.job(str(job_id))
            except JobNotFound:
                continue
            if task is None or info.task == task:
                found.append(info)
            if len(found) >= limit:
                break
        return found

    async def purge_dead_letters(self, job_ids: Sequence[str] = (), queue: str | None = None) -> int:
        """Take dead-lettered jobs out of a dead-letter queue for good (all of it when no ids are given):
        a standalone job is deleted, a flow job leaves with its run when retention prunes it. Returns how
        many."""
        purged = 0
        for part, ids in await self._by_part(job_ids):
            if job_ids and not ids:
                continue
            for start in range(0, max(1, len(ids)), 500):
                page = ids[start : start + 500]
                purged += int(await part.scripts.run(calls.purge_dlq(part.keys, queue, page)))
        return purged

    async def _by_part(self, job_ids: Sequence[str]) -> list[tuple[Part, list[str]]]:
        """Every partition with the ids (theirs) of `job_ids` in it, in partition order."""
        parts = await self._parts()
        grouped: dict[int, list[str]] = {id(p): [] for p in parts}
        for job_id in job_ids:
            part, local = await self._at(job_id)
            grouped[id(part)].append(local)
        return [(p, grouped[id(p)]) for p in parts]

    async def dead_letter_queues(self) -> list[str]:
        names: set[str] = set()
        for part in await self._parts():
            names |= {str(n) for n in await part.redis.smembers(part.keys.dlqs)}
        return sorted(names)

    async def replay(
        self, job_ids: Sequence[str], queue: str | None = None, seen: Mapping[str, int | str] | None = None
    ) -> dict[str, str]:
        """Put dead-lettered jobs back on their queues with a fresh attempt count; a status per job.

        A job of a run (or a fan-out item of one) resumes its run instead: every job of the run that did
        not succeed runs again, so the run ends again and its downstream jobs run (status `resumed`).
        `seen`: job id -> the `finished_ms` of the DLQ entry the caller saw; such a standalone job is
        replayed only if it is still that dead-lettering (else `already-replayed`), so concurrent replays
        of one DLQ entry enqueue it once."""
        out: dict[str, str] = {}
        ids, resumed = [], {}  # a run resumes once, however many of its jobs are replayed together
        for job_id, run_id in zip(job_ids, await self._runs_of(job_ids), strict=True):
            if run_id is None:
                ids.append(job_id)
                continue
            if run_id not in resumed:
                try:
                    await self.resume(run_id)
                    resumed[run_id] = "resumed"
                except (ResumeError, LookupError) as err:
                    resumed[run_id] = f"not-resumed: {err}"
            out[job_id] = resumed[run_id]
        for part, own in await self._by_part(ids):
            local_seen: dict[str, int | str] | None = None if seen is None else {}
            for local in own:
                if seen is not None and local_seen is not None and part.shown(local) in seen:
                    local_seen[local] = seen[part.shown(local)]
            for start in range(0, len(own), 500):
                page = own[start : start + 500]
                call = calls.replay(part.keys, now_ms(), queue or "", page, local_seen)
                statuses = await part.scripts.run(call)
                out.update(zip((part.shown(i) for i in page), (str(s) for s in statuses), strict=True))
        return out

    async def _runs_of(self, job_ids: Sequence[str]) -> list[str | None]:
        """The run each job belongs to (through its fan-out parent for an item), None for a standalone job;
        a run of a data partition by its `pK:` id (a run's jobs are in its partition)."""
        found: dict[str, str | None] = {}
        for part, own in await self._by_part(job_ids):  # one pipeline per partition
            runs = await jobrows.dead_runs(part.redis, part.keys, own) if own else []
            for local, run_id in zip(own, runs, strict=True):
                found[part.shown(local)] = part.shown(run_id) if run_id else None
        return [found.get(job_id) for job_id in job_ids]

    async def replay_all(self, queue: str | None = None, task: str | None = None) -> dict[str, str]:
        """Replay every job of a dead-letter queue (or only one task's)."""
        ids: list[str] = []
        for part in await self._parts():
            own = [str(i) for i in await part.redis.zrange(part.keys.dead_letter(queue), 0, -1)]
            if task is not None:
                names = await jobrows.tasks(part.redis, part.keys, own)
                own = [i for i, name in zip(own, names, strict=True) if name == task]
            ids += [part.shown(i) for i in own]
        return await self.replay(ids, queue)

    async def list_jobs(
        self, queue: str | None = None, state: str | None = None, limit: int = 50
    ) -> list[JobInfo]:
        """Jobs on the queues (queued or running, from the streams), waiting for a delay or a retry
        (scheduled, retrying), for a limiter (limited) or for their dependencies (waiting), or
        dead-lettered (dead); filtered by queue and
        state, up to `limit`."""
        ids: list[str] = []
        for part in await self._parts():  # partition by partition (the control slot first)
            ids += [part.shown(i) for i in await _listed(part, queue, state, limit)]
        found: list[JobInfo] = []
        for job_id in dict.fromkeys(ids):
            try:
                info = await self.job(job_id)
            except JobNotFound:
                continue
            if (state is None or info.state == state) and (queue is None or info.queue == queue):
                found.append(info)
            if len(found) >= limit:
                break
        return found


async def _listed(part: Part, queue: str | None, state: str | None, limit: int) -> list[str]:
    """`list_jobs`' candidates in one partition: ids on its streams, delayed, limited, waiting, dead."""
    redis, keys = part.redis, part.keys
    ids: list[str] = []
    if state in (None, "queued", "running"):
        known: Any = await redis.smembers(keys.queues)
        queues = [queue] if queue else sorted(str(q) for q in known)
        for name in queues:
            for level, stream in enumerate(keys.streams(name)):
                entries: Any = await redis.xrange(stream, count=limit * 4)
                ids += [lean.entry_job(name, level, eid, fields) for eid, fields in entries or []]
        ids = [i for i in ids if i]
    if state in (None, "scheduled", "retrying"):
        ids += [str(i) for i in await redis.zrange(keys.delayed, 0, limit * 4)]
    if state in (None, "limited"):
        ids += await waiting_jobs(redis, keys, limit * 4)
    if state in (None, "waiting"):  # standalone jobs waiting for their depends_on
        ids += [str(i) for i in await redis.zrange(keys.after_waiting, 0, limit * 4)]
    if state in (None, "dead"):
        ids += [str(i) for i in await redis.zrevrange(keys.dlq, 0, limit * 4)]
    return ids


__all__ = ["Client", "JobCancelled", "JobFailed", "JobNotFound", "JobRejected", "JobSkipped", "Unique"]
