"""A read-only view over one deployment's Redis: runs, jobs, flows and versions, queues, workers, DLQ.

It never writes. Every key comes from `Keys`. Lists are paged (offset and limit) and reads are
pipelined, so looking at a busy deployment costs a bounded number of round trips.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tqflow.errors import JobNotFound, RunNotFound, UsageError
from tqflow.plan import LEVELS, FlowPlan, Priority
from tqflow.runtime import partitions
from tqflow.runtime.cluster.leader import current_leader
from tqflow.runtime.cluster.registry import list_workers
from tqflow.runtime.connection import for_partition
from tqflow.runtime.deployments import Deployments, FlowNotDeployed
from tqflow.runtime.limit_inspect import LimitsOverview, read_limits, waiting_jobs
from tqflow.runtime.runs import now_ms, read_run
from tqflow.runtime.store import codec, jobrows, lean, payloads, records, runrows
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.records import JobRecord
from tqflow.runtime.views import (
    AttemptView,
    DeadJob,
    Edge,
    FlowDetail,
    FlowSummary,
    FlowVersion,
    JobView,
    Page,
    QueueLevel,
    QueuesOverview,
    QueueStats,
    RunDetail,
    RunSummary,
    WorkerView,
)

MAX_LIMIT = 500
SCAN_BATCH = 200
SCAN_CAP = 20_000  # a filtered run listing reads at most this many run records
JOB_STATE_SOURCES = ("queued", "running", "scheduled", "retrying", "limited", "waiting", "dead")
ACTIVE_WORKER_MS = 60_000
READ_ONLY_PAYLOADS = payloads.PayloadSettings()  # no signing key: pickles are refused, never loaded


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _json(value: Any) -> Any:
    """A stored JSON value decoded, or the raw text when it is not JSON."""
    try:
        return codec.decode(value)
    except (ValueError, TypeError):
        return value


def _payload(value: Any) -> Any:
    """A job's result for display. Never unpickles: a pickle payload shows as unreadable."""
    if value is None or value == "":
        return None
    try:
        return displayable(payloads.value(str(value), READ_ONLY_PAYLOADS))
    except payloads.PayloadError as err:
        return f"<unreadable result: {err}>"
    except (ValueError, TypeError):
        return _json(value)


def displayable(value: Any, depth: int = 0) -> Any:
    """A decoded payload as JSON can show it: MessagePack `bytes` become `{"$base64": …}` (raw bytes are
    not text, and a JSON answer with them in it could not be written)."""
    if isinstance(value, bytes | bytearray):
        return {"$base64": base64.b64encode(bytes(value)).decode()}
    if depth > 64:
        return value
    if isinstance(value, dict):
        return {str(k): displayable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [displayable(v, depth + 1) for v in value]
    return value


def run_summary(run_id: str, row: dict[str, Any]) -> RunSummary:
    return RunSummary(
        id=run_id,
        flow=str(row.get("flow") or ""),
        version=_int(row.get("version")) or 0,
        state=str(row.get("state") or "unknown"),
        created=_int(row.get("created")) or 0,
        finished=_int(row.get("finished")),
        open=_int(row.get("open")) or 0,
        failed=_int(row.get("failed")) or 0,
        parent_job=row.get("parent_job") or None,
        parent_run=row.get("parent_run") or None,
    )


OPTION_NAMES = (("t", "timeout_ms"), ("dl", "deadline_ms"), ("dlq", "dead_letter"), ("d", "delay_ms"))


def job_options(opts: Any) -> dict[str, Any]:
    """What a job's stored options say, readably: retry plan, timeout, deadline, dead-letter queue,
    dependencies."""
    try:
        raw = json.loads(opts) if opts else {}
    except (ValueError, TypeError):
        return {}
    out: dict[str, Any] = {}
    if isinstance(raw, dict):
        if "r" in raw:
            out["retry"] = raw["r"] or {"kind": "none"}
        for short, name in (
            ("t", "timeout_ms"),
            ("dl", "deadline_ms"),
            ("dlq", "dead_letter"),
            ("d", "delay_ms"),
            ("dep", "depends_on"),
        ):
            if raw.get(short):
                out[name] = raw[short]
        if raw.get("da") == "done":
            out["allow_failure"] = True
    return out


def job_view(job_id: str, row: Mapping[str, Any], attempts: list[str] | None = None) -> JobView:
    row = records.fields(row)  # a lean success's packed end, unpacked (store/endrow.py)
    record = JobRecord.parse(job_id, row) or JobRecord.parse(job_id, {**row, "state": "unknown"})
    assert record is not None
    views = [AttemptView.model_validate_json(a) for a in attempts or []]
    if not views and record.first_attempt_only:  # no history is written for a first-attempt success
        views = [first_attempt(record)]
    form = payloads.form_of(row.get("payload"))
    options = job_options(row.get("opts"))
    return JobView(
        id=job_id,
        name=record.name or (job_id.rpartition(".")[2] if record.run else job_id),
        run=record.run or record.of_run,  # a fan-out child: its parent's run
        flow=record.flow,
        task=record.task,
        queue=record.queue,
        priority=record.priority,
        state=record.state,
        attempt=record.attempt,
        created=record.created,
        enqueued=record.enqueued,
        started=record.started,
        finished=record.finished,
        due=record.due,
        worker=record.worker or None,
        reason=record.reason,
        error=record.error,
        result=_payload(record.result),
        args=_payload(row.get("payload")),
        codec=form[0] if form else None,
        compression=form[1] if form else None,
        options=options,
        depends_on=[str(d) for d in options.get("depends_on") or []],
        allow_failure=bool(options.get("allow_failure")),
        duration_ms=record.finished - record.started
        if record.started is not None and record.finished is not None
        else None,
        children=record.children,
        children_left=record.children_left,
        child_run=row.get("child") or None,
        attempts=views,
    )


def first_attempt(record: JobRecord) -> AttemptView:
    """The one attempt of a job that succeeded at its first try, from its record."""
    started = record.started or 0
    return AttemptView(
        attempt=1,
        worker=record.worker,
        started=started,
        duration_ms=max(0, (record.finished or started) - started),
        outcome="succeeded",
        waited_ms=max(0, started - (record.enqueued or started)),
    )


def plan_edges(flow: FlowPlan) -> list[Edge]:
    edges = []
    for name in flow.order:
        job = flow.jobs[name]
        for up in job.waits_for:
            edges.append(Edge(source=up, target=name, kind="data" if up in job.data_deps else "after"))
    return edges


class Inspector:
    """Read-only views of a namespace. In a namespace of several partitions (runtime/partitions.py) the
    run, job, queue and dead-letter views gather over every partition (the control slot's inspector asks
    one of its own per data partition, `parts()`), and a data partition's job and run ids are shown as
    `pK:ID`."""

    def __init__(self, redis: Redis, namespace: str = "tqflow", partition: int | None = None) -> None:
        self.redis: Any = redis  # redis-py's reply types are unions too wide to be useful here
        self.partition = partition
        self.keys = Keys(namespace, partition)
        self.deployments = Deployments(redis, self.keys)
        self._parts: list[Inspector] | None = None

    async def parts(self) -> list[Inspector]:
        """The control slot's inspector (this one), then one per data partition."""
        if self._parts is None:
            count = await partitions.count_of(self.redis, self.keys)
            ns = self.keys.namespace
            data = (
                [Inspector(for_partition(self.redis, ns, k), ns, k) for k in range(count)]
                if count > 1
                else []
            )
            for part in data:  # deploys are in the control slot: read them over its connection
                part.deployments = self.deployments
                part._parts = [part]  # a data partition's own reads stay in it
            self._parts = [self, *data]
        return self._parts

    async def _at(self, job_id: str) -> tuple[Inspector, str]:
        parts = await self.parts()
        found = partitions.PARTITION_ID.match(job_id) if len(parts) > 1 else None
        if found is None:
            return self, job_id
        index, local = partitions.split_id(job_id, len(parts) - 1)
        assert index is not None
        return parts[index + 1], local

    def _shown(self, views: list[JobView]) -> list[JobView]:
        """Views read in a data partition, with the ids callers see (the job's, its run's, its child
        run's: a run's jobs and sub-flow children are in the run's partition)."""
        if self.partition is not None:
            for view in views:
                view.id = self._shown_id(view.id)
                view.run = self._shown_id(view.run)
                view.child_run = self._shown_id(view.child_run) if view.child_run else view.child_run
        return views

    def _shown_id(self, local: str) -> str:
        return partitions.external_id(self.partition, local)

    # ---- runs -------------------------------------------------------------------------------
    async def runs(
        self,
        *,
        flow: str | None = None,
        state: str | None = None,
        offset: int = 0,
        limit: int = 50,
        since: int | None = None,
        until: int | None = None,
        search: str | None = None,
    ) -> Page[RunSummary]:
        """Runs, newest first, optionally only one flow's, in one state, started between `since` and
        `until` (ms), or whose id or parameters contain `search`."""
        limit = max(1, min(limit, MAX_LIMIT))
        offset = max(0, offset)
        parts = await self.parts()
        if len(parts) == 1:
            return await self._runs_here(flow, state, offset, limit, since, until, search)
        # gathered: each partition's newest offset+limit, merged newest first (runs are pinned to one)
        pages = [await p._runs_here(flow, state, 0, offset + limit, since, until, search) for p in parts]
        merged = sorted((r for page in pages for r in page.items), key=lambda r: r.created, reverse=True)
        more = len(merged) > offset + limit or any(page.next_offset is not None for page in pages)
        counted = [page.total for page in pages]
        return Page(
            items=merged[offset : offset + limit],
            offset=offset,
            limit=limit,
            next_offset=offset + limit if more else None,
            total=None if None in counted else sum(t or 0 for t in counted),
        )

    async def _runs_here(
        self,
        flow: str | None,
        state: str | None,
        offset: int,
        limit: int,
        since: int | None,
        until: int | None,
        search: str | None,
    ) -> Page[RunSummary]:
        """`runs` in this partition alone."""
        if since is not None or until is not None or search:
            return await self._searched_runs(flow, state, offset, limit, since, until, search)
        if flow is None and state is None:
            ids = await self.redis.zrevrange(self.keys.runs, offset, offset + limit - 1)
            total = await self.redis.zcard(self.keys.runs)
            items = await self._run_summaries(ids)
            more = offset + limit < total
            return Page(
                items=items,
                offset=offset,
                limit=limit,
                next_offset=offset + limit if more else None,
                total=total,
            )
        return await self._filtered_runs(flow, state, offset, limit)

    async def recent_runs(self, count: int) -> list[RunSummary]:
        """The `count` latest runs (for gauges and alerts; not paged), over every partition."""
        found: list[RunSummary] = []
        for part in await self.parts():
            found += await part._run_summaries(
                await part.redis.zrevrange(part.keys.runs, 0, max(0, count - 1))
            )
        return sorted(found, key=lambda r: r.created, reverse=True)[:count]

    async def _filtered_runs(
        self, flow: str | None, state: str | None, offset: int, limit: int
    ) -> Page[RunSummary]:
        matched: list[RunSummary] = []
        position = 0
        while position < SCAN_CAP and len(matched) <= offset + limit:
            ids = await self.redis.zrevrange(self.keys.runs, position, position + SCAN_BATCH - 1)
            if not ids:
                break
            position += len(ids)
            for run in await self._run_summaries(ids):
                if (flow is None or run.flow == flow) and (state is None or run.state == state):
                    matched.append(run)
        more = len(matched) > offset + limit
        return Page(
            items=matched[offset : offset + limit],
            offset=offset,
            limit=limit,
            next_offset=offset + limit if more else None,
        )

    async def _searched_runs(
        self,
        flow: str | None,
        state: str | None,
        offset: int,
        limit: int,
        since: int | None,
        until: int | None,
        search: str | None,
    ) -> Page[RunSummary]:
        low = "-inf" if since is None else since
        high = "+inf" if until is None else until
        needle = "".join((search or "").lower().split())  # parameters are stored as compact JSON
        matched: list[RunSummary] = []
        position = 0
        while position < SCAN_CAP and len(matched) <= offset + limit:
            ids = await self.redis.zrevrangebyscore(self.keys.runs, high, low, start=position, num=SCAN_BATCH)
            if not ids:
                break
            position += len(ids)
            async with self.redis.pipeline(transaction=False) as pipe:
                for run_id in ids:
                    runrows.queue_params(pipe, self.keys, run_id)
                params = dict(zip(map(self._shown_id, ids), await pipe.execute(), strict=True))
            for run in await self._run_summaries(ids):
                text = params.get(run.id)
                if (flow is not None and run.flow != flow) or (state is not None and run.state != state):
                    continue
                stored = "".join(str(text or "").lower().split())
                if needle and needle not in run.id.lower() and needle not in stored:
                    continue
                matched.append(run)
        more = len(matched) > offset + limit
        return Page(
            items=matched[offset : offset + limit],
            offset=offset,
            limit=limit,
            next_offset=offset + limit if more else None,
        )

    async def _run_summaries(self, ids: list[str]) -> list[RunSummary]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for run_id in ids:
                runrows.queue_summary(pipe, self.keys, run_id)
            rows = await pipe.execute()
        found = [(run_id, runrows.summary(row)) for run_id, row in zip(ids, rows, strict=True)]
        return [self._shown_run(run_summary(run_id, row)) for run_id, row in found if row is not None]

    def _shown_run(self, summary: RunSummary) -> RunSummary:
        """A summary read in a data partition with the ids callers see (a sub-flow's parent is there too)."""
        if self.partition is not None:
            summary.id = self._shown_id(summary.id)
            summary.parent_job = self._shown_id(summary.parent_job) if summary.parent_job else None
            summary.parent_run = self._shown_id(summary.parent_run) if summary.parent_run else None
        return summary

    async def run(self, run_id: str) -> RunDetail:
        part, local = await self._at(run_id)
        if part is not self:  # a run of a data partition: read there, shown with its ids
            return await part.run(local)
        row = await runrows.record(self.redis, self.keys, run_id)
        if not row:
            raise RunNotFound(f"no run {run_id}")
        summary = self._shown_run(run_summary(run_id, row))
        flow = await self._plan_or_none(summary.flow, summary.version)
        names = flow.order if flow is not None else []
        jobs = self._shown(await self._jobs([f"{run_id}.{name}" for name in names], with_attempts=True))
        for job in jobs:
            if flow is not None and job.name in flow.jobs:
                job.waits_for = list(flow.jobs[job.name].waits_for)
        outputs: dict[str, Any] = {}
        output_errors: dict[str, str] = {}
        if flow is not None and summary.state == "succeeded":
            info = await read_run(self.redis, self.keys, run_id, flow)
            outputs, output_errors = info.outputs, info.output_errors
        return RunDetail(
            **summary.model_dump(),
            params=_json(row.get("params")),
            jobs=jobs,
            edges=plan_edges(flow) if flow is not None else [],
            counts=dict(Counter(job.state for job in jobs)),
            outputs=outputs,
            output_errors=output_errors,
        )

    async def _plan_or_none(self, flow: str, version: int) -> FlowPlan | None:
        with contextlib.suppress(LookupError, ValueError):
            return (await self.deployments.get(flow, version))[1]
        return None

    # ---- jobs -------------------------------------------------------------------------------
    async def job(self, job_id: str) -> JobView:
        part, local = await self._at(job_id)
        jobs = part._shown(await part._jobs([local], with_attempts=True))
        if not jobs:
            raise JobNotFound(f"no job {job_id}")
        return jobs[0]

    async def _jobs(self, ids: list[str], *, with_attempts: bool = False) -> list[JobView]:
        async with self.redis.pipeline(transaction=False) as pipe:
            lean_ids = [lean.queue_lookup(pipe, self.keys, job_id) for job_id in ids]
            for job_id in ids:
                jobrows.queue_record(pipe, self.keys, job_id)
                if with_attempts:
                    pipe.lrange(self.keys.attempts(job_id), 0, -1)
            replies = await pipe.execute(raise_on_error=False)
        lookups = iter(replies[: lean.READS * sum(lean_ids)])
        records = [lean.checked(r) for r in replies[lean.READS * sum(lean_ids) :]]
        step = 2 if with_attempts else 1
        views = []
        for index, (job_id, is_lean) in enumerate(zip(ids, lean_ids, strict=True)):
            row = records[index * step]
            if is_lean:
                entry, delivery = next(lookups), next(lookups)
                if not row.get("state"):  # no record (or a waiter's flag alone): a lean job's entry, or none
                    row = lean.record(job_id, entry, delivery) or {}
            if row.get("state"):
                views.append(job_view(job_id, row, records[index * step + 1] if with_attempts else None))
        return views

    async def children(self, job_id: str, *, offset: int = 0, limit: int = 50) -> Page[JobView]:
        """A fan-out job's child jobs (`JOB_ID.0`, `.1`, …) with their states, in item order."""
        parent = await self.job(job_id)
        total = parent.children or 0
        limit = max(1, min(limit, MAX_LIMIT))
        offset = max(0, offset)
        ids = [f"{job_id}.{i}" for i in range(offset, min(total, offset + limit))]
        more = offset + limit < total
        return Page(
            items=await self._jobs(ids),
            offset=offset,
            limit=limit,
            next_offset=offset + limit if more else None,
            total=total,
        )

    async def jobs(
        self,
        *,
        run: str | None = None,
        state: str | None = None,
        queue: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Page[JobView]:
        """Jobs of one run, or jobs in a live state (queued, running, scheduled, retrying, limited, waiting
        for their `depends_on`, dead)."""
        limit = max(1, min(limit, MAX_LIMIT))
        offset = max(0, offset)
        if run is not None:
            jobs = (await self.run(run)).jobs
        elif state in JOB_STATE_SOURCES:
            jobs = []
            for part in await self.parts():  # partition by partition (the control slot first)
                found = await part._jobs(await part._ids_in_state(state, queue, offset + limit + 1))
                jobs += part._shown(found)
        else:
            raise UsageError(f"filter jobs by run, or by state: one of {', '.join(JOB_STATE_SOURCES)}")
        jobs = [
            j for j in jobs if (state is None or j.state == state) and (queue is None or j.queue == queue)
        ]
        more = len(jobs) > offset + limit
        return Page(
            items=jobs[offset : offset + limit],
            offset=offset,
            limit=limit,
            next_offset=offset + limit if more else None,
            total=len(jobs) if run is not None else None,
        )

    async def _ids_in_state(self, state: str, queue: str | None, count: int) -> list[str]:
        if state == "dead":
            return [
                str(i) for key in await self.dlq_keys() for i in await self.redis.zrevrange(key, 0, count - 1)
            ]
        if state in ("scheduled", "retrying"):
            return list(await self.redis.zrange(self.keys.delayed, 0, count * 4))
        if state == "limited":
            return await waiting_jobs(self.redis, self.keys, count)
        if state == "waiting":  # standalone jobs waiting for their dependencies, oldest first
            return [str(i) for i in await self.redis.zrange(self.keys.after_waiting, 0, count - 1)]
        ids: list[str] = []
        for name in [queue] if queue else await self.queue_names():
            for level in range(LEVELS):
                ids += await self._stream_ids(name, level, running=state == "running", count=count)
        return [i for i in ids if i]

    async def _stream_ids(self, queue: str, level: int, *, running: bool, count: int) -> list[str]:
        stream = self.keys.stream(queue, level)
        try:
            if running:
                pending = await self.redis.xpending_range(stream, self.keys.group, "-", "+", count)
                entry_ids = [p["message_id"] for p in pending]
                entries = [e for i in entry_ids for e in await self.redis.xrange(stream, i, i)]
            else:
                last = await self._last_delivered(stream)
                entries = await self.redis.xrange(stream, f"({last}" if last else "-", "+", count)
        except ResponseError:
            return []
        return [lean.entry_job(queue, level, eid, fields) for eid, fields in entries]

    async def _last_delivered(self, stream: str) -> str | None:
        for group in await self.redis.xinfo_groups(stream):
            if group["name"] == self.keys.group:
                last = str(group["last-delivered-id"])
                return None if last == "0-0" else last
        return None

    # ---- flows ------------------------------------------------------------------------------
    async def flows(self) -> list[FlowSummary]:
        return [await self._flow_summary(name) for name in await self.deployments.names()]

    async def _flow_summary(self, name: str) -> FlowSummary:
        current, latest = await self.redis.hmget(self.keys.flow(name), "current", "latest")
        summary = FlowSummary(name=name, current=_int(current), latest=_int(latest) or 0)
        if summary.current is not None:
            plan = await self._plan_or_none(name, summary.current)
            if plan is not None:
                summary.queue, summary.jobs, summary.triggers = plan.queue, len(plan.jobs), len(plan.triggers)
        return summary

    async def flow(self, name: str, version: int | None = None) -> FlowDetail:
        if not await self.redis.exists(self.keys.flow(name)):
            raise FlowNotDeployed(f"flow `{name}` is not deployed")
        summary = await self._flow_summary(name)
        chosen, plan = await self.deployments.get(name, version)
        ids = await self.redis.hmget(self.keys.flow(name), [f"id:{v}" for v in range(1, summary.latest + 1)])
        versions = [
            FlowVersion(version=v, plan_id=str(plan_id), current=v == summary.current)
            for v, plan_id in enumerate(ids, start=1)
            if plan_id is not None
        ]
        return FlowDetail(
            **summary.model_dump(), versions=versions, plan=plan.model_dump(mode="json"), version=chosen
        )

    # ---- queues -----------------------------------------------------------------------------
    async def queue_names(self) -> list[str]:
        """Queues workers have served, and those the deployed flows' jobs use (before any worker came)."""
        names = {str(q) for q in await self.redis.smembers(self.keys.queues)}
        if self.partition is not None:  # a data partition: no flows here (they are the control slot's)
            return sorted(names)
        for flow in await self.deployments.names():
            with contextlib.suppress(LookupError, ValueError):
                plan = (await self.deployments.get(flow))[1]
                names |= {plan.queue, *(job.queue for job in plan.jobs.values())}
        return sorted(names)

    async def limits(self, limiter: str | None = None) -> LimitsOverview:
        """Each limiter's keys: in use, waiting jobs, a rate bucket's tokens (runtime/limit_inspect.py)."""
        return await read_limits(self.redis, self.keys, limiter)

    async def queues(self) -> QueuesOverview:
        """Every queue's depth, summed over the partitions, and the delayed and dead-lettered jobs."""
        parts = await self.parts()
        names = set(await self.queue_names())
        for part in parts[1:]:
            names |= {str(q) for q in await part.redis.smembers(part.keys.queues)}
        stats = [await self.queue(name) for name in sorted(names)]
        delayed = dead = 0
        for part in parts:
            delayed += await part.redis.zcard(part.keys.delayed)
            dead += sum([await part.redis.zcard(key) for key in await part.dlq_keys()])
        return QueuesOverview(queues=stats, delayed=delayed, dead=dead)

    async def queue(self, name: str) -> QueueStats:
        levels = []
        for level in range(LEVELS):
            each = [await part._level(name, level) for part in await self.parts()]
            ages = [lv.oldest_age_ms for lv in each if lv.oldest_age_ms is not None]
            levels.append(
                each[0].model_copy(
                    update={
                        "waiting": sum(lv.waiting for lv in each),
                        "running": sum(lv.running for lv in each),
                        "oldest_age_ms": max(ages) if ages else None,
                    }
                )
            )
        ages = [lv.oldest_age_ms for lv in levels if lv.oldest_age_ms is not None]
        return QueueStats(
            queue=name,
            waiting=sum(lv.waiting for lv in levels),
            running=sum(lv.running for lv in levels),
            oldest_age_ms=max(ages) if ages else None,
            levels=levels,
        )

    async def _level(self, queue: str, level: int) -> QueueLevel:
        stream = self.keys.stream(queue, level)
        length, pending, last = 0, 0, None
        with contextlib.suppress(ResponseError):  # no such stream yet
            length = await self.redis.xlen(stream)
            for group in await self.redis.xinfo_groups(stream) if length else []:
                if group["name"] == self.keys.group:
                    pending = int(group["pending"])
                    last = str(group["last-delivered-id"])
        waiting = max(0, length - pending) + await self._fair_waiting(queue, level)
        oldest = None
        if waiting:
            first = await self.redis.xrange(stream, f"({last}" if last and last != "0-0" else "-", "+", 1)
            if first:
                oldest = max(0, now_ms() - int(first[0][0].split("-")[0]))
        return QueueLevel(
            queue=queue,
            priority=Priority(level).label,
            level=level,
            waiting=waiting,
            running=pending,
            oldest_age_ms=oldest,
        )

    async def _fair_waiting(self, queue: str, level: int) -> int:
        """Jobs with a fair key not yet fed onto the stream (lua/fair.lua): in their keys' lists."""
        fair_keys = await self.redis.zrange(self.keys.fair(queue, level), 0, 999)
        if not fair_keys:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in fair_keys:
                pipe.llen(self.keys.fair_list(queue, level, str(key)))
            return sum(int(n) for n in await pipe.execute())

    # ---- workers ----------------------------------------------------------------------------
    async def workers(self) -> list[WorkerView]:
        """Workers from the registry (heartbeats), then any consumer of the queues that is not in it
        but holds jobs or read recently (a worker of an older version, or one already forgotten)."""
        views = {view.name: view for view in await self._registered_workers()}
        for view in await self._consumers():
            if view.name not in views and (view.running or (view.idle_ms or 0) < ACTIVE_WORKER_MS):
                views[view.name] = view
        return sorted(views.values(), key=lambda w: w.name)

    async def _registered_workers(self) -> list[WorkerView]:
        cluster = ClusterKeys(self.keys)
        leader = await current_leader(self.redis, cluster)
        now = now_ms()
        return [
            WorkerView(
                name=record.name,
                queues=list(record.queues),
                running=len(record.jobs),
                idle_ms=max(0, now - record.heartbeat_ms),
                state=("leader" if leader and leader[0] == record.name else "alive")
                if record.alive
                else "dead",
                source="registry",
                info={
                    "node": record.node,
                    "pid": record.pid,
                    "concurrency": record.concurrency,
                    "version": record.version,
                    "started": record.started_ms,
                    "jobs": record.jobs,
                },
            )
            for record in await list_workers(self.redis, cluster)
        ]

    async def _consumers(self) -> list[WorkerView]:
        """Workers as the streams' consumer groups know them (name, queues, jobs held, idle time)."""
        seen: dict[str, WorkerView] = {}
        for queue in await self.queue_names():
            for stream in self.keys.streams(queue):
                try:
                    consumers = await self.redis.xinfo_consumers(stream, self.keys.group)
                except ResponseError:
                    continue
                for consumer in consumers:
                    view = seen.setdefault(str(consumer["name"]), WorkerView(name=str(consumer["name"])))
                    if queue not in view.queues:
                        view.queues.append(queue)
                    view.running += int(consumer["pending"])
                    idle = int(consumer["idle"])
                    view.idle_ms = idle if view.idle_ms is None else min(view.idle_ms, idle)
        for view in seen.values():
            view.state = "unregistered"
        return list(seen.values())

    # ---- dead-letter queue ------------------------------------------------------------------
    async def dlq_names(self) -> list[str]:
        """The named dead-letter queues (the default one has no name), of every partition."""
        names: set[str] = set()
        for part in [self] if self.partition is not None else await self.parts():
            names |= {str(n) for n in await part.redis.smembers(part.keys.dlqs)}
        return sorted(names)

    async def dlq_keys(self) -> list[str]:
        return [self.keys.dead_letter(None), *(self.keys.dead_letter(n) for n in await self.dlq_names())]

    async def dlq(self, *, name: str | None = None, offset: int = 0, limit: int = 50) -> Page[DeadJob]:
        """One dead-letter queue (the default, or a named one), newest first."""
        limit = max(1, min(limit, MAX_LIMIT))
        offset = max(0, offset)
        rows: list[tuple[float, Inspector, str]] = []
        total = 0
        for part in await self.parts():  # each partition's newest, merged by the time they were dead-lettered
            key = part.keys.dead_letter(name)
            found = await part.redis.zrevrange(key, 0, offset + limit - 1, withscores=True)
            rows += [(float(score), part, str(job_id)) for job_id, score in found]
            total += await part.redis.zcard(key)
        rows = sorted(rows, key=lambda row: -row[0])[offset : offset + limit]
        items = []
        for score, part, job_id in rows:
            jobs = part._shown(await part._jobs([job_id]))
            shown = partitions.external_id(part.partition, job_id)
            items.append(DeadJob(dead_at=int(score), job=jobs[0] if jobs else JobView(id=shown)))
        more = offset + limit < total
        return Page(
            items=items, offset=offset, limit=limit, next_offset=offset + limit if more else None, total=total
        )

    async def attempts(self, job_id: str) -> list[AttemptView]:
        part, local = await self._at(job_id)
        return [
            AttemptView.model_validate(json.loads(a))
            for a in await part.redis.lrange(part.keys.attempts(local), 0, -1)
        ]
