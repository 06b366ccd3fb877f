"""Standalone jobs: submit a task outside any flow, alone or in bulk, and read it back.

A queued standalone job without a delay, a deadline or a unique key is "lean": one stream entry holding
its task, payload and options, and no record until it starts (see runtime/lean.py). Any other costs one
small hash (task, payload, queue, priority, state, times, stream entry id, `opts`) and, when queued, one
stream entry holding its 16-character id. Neither has a run record.
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, TypeVar

from redis.asyncio import Redis

from tqflow.compiler.plan import DEFAULT_QUEUE, PRIORITIES, RetryPlan
from tqflow.runtime import lean, payloads
from tqflow.runtime.keys import Keys, check_part
from tqflow.runtime.payloads import PayloadSettings
from tqflow.runtime.policies import Duration, to_ms
from tqflow.runtime.runs import JobInfo, now_ms
from tqflow.runtime.scripts import Scripts
from tqflow.runtime.task import Call, Task
from tqflow.runtime.validation import validator

R = TypeVar("R")
MAX_SCRIPT_ARGS = 1000  # no script call gets more arguments than about this (Lua's stack, dramatiq #258)
JOBS_PER_PAGE = MAX_SCRIPT_ARGS - 10  # jobs of one spec that fit one call
MAX_BULK = 100_000
CONFLICTS = ("skip", "reject", "replace")

TaskLike = Task[Any, Any] | str


class JobError(Exception):
    """A job ended without a result."""

    def __init__(self, job_id: str, message: str, error: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.error = dict(error or {})


class JobFailed(JobError):
    """The job was dead-lettered: `error` holds its type, message and traceback."""


class JobCancelled(JobError):
    pass


class JobSkipped(JobError):
    pass


class JobNotFound(LookupError):
    pass


class JobRejected(ValueError):
    """A unique job was refused because another job holds its key (conflict=reject)."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


class BulkRejected(ValueError):
    """An all-or-nothing submission was refused as a whole; `results` says why, job by job."""

    def __init__(self, message: str, results: list[JobId[Any]]) -> None:
        super().__init__(message)
        self.results = results


class JobId(str, Generic[R]):
    """A job id (a `str`) that remembers its task's result type for `client.result`.

    `status` is `ok` (submitted), `skipped` (a unique job that already exists: the id is that job's),
    `rejected` (unique conflict=reject) or `error` (`detail` says why); those two only from best-effort bulk.
    """

    status: str
    detail: str
    task: Task[Any, R] | None

    def __new__(
        cls, value: str, status: str = "ok", detail: str = "", task: Task[Any, R] | None = None
    ) -> JobId[R]:
        self = super().__new__(cls, value)
        self.status, self.detail, self.task = status, detail, task
        return self

    @property
    def accepted(self) -> bool:
        return self.status in ("ok", "skipped")


@dataclass(frozen=True)
class Unique:
    """At most one job with this key within `within`; on a clash: skip (return the existing job's id),
    reject (raise JobRejected), or replace (cancel the existing job if it has not started)."""

    key: str
    within: Duration
    conflict: str = "skip"

    def __post_init__(self) -> None:
        check_part("unique key", self.key)
        if self.conflict not in CONFLICTS:
            raise ValueError(f"conflict {self.conflict!r} is not one of {', '.join(CONFLICTS)}")
        if to_ms(self.within, "unique within") <= 0:
            raise ValueError("unique `within` must be longer than 0")


@dataclass(frozen=True)
class JobOptions:
    queue: str | None = None
    priority: str | None = None
    delay: Duration | None = None
    retry: RetryPlan | None = None
    unique: Unique | None = None
    timeout: Duration | None = None
    deadline: Duration | None = None
    dead_letter: str | None = None


_ids = itertools.count(random.SystemRandom().getrandbits(62))


def new_job_id() -> str:
    """16 hex characters: a random 62-bit start per process, then counting (cheap and collision-free
    in practice: two processes collide only if their starts are within their job counts)."""
    return f"{next(_ids) & 0xFFFFFFFFFFFFFFFF:016x}"


Spec = tuple[str, str, int, str]  # task, queue, priority level, options JSON


class Prepared:
    """One job ready to submit (a plain class: bulk calls make many). A lean job's id is '' until the
    enqueue script says which stream entry it got; the JobId is made once, from the script's reply."""

    __slots__ = ("job_id", "payload", "spec", "task")

    def __init__(self, spec: Spec, job_id: str, payload: str, task: Task[Any, Any] | None = None) -> None:
        self.spec, self.job_id, self.payload, self.task = spec, job_id, payload, task


@lru_cache(maxsize=256)
def needs_record(opts: str, queue: str) -> bool:
    """A delay (the delayed set holds ids), a deadline (its clock starts at enqueue) or a unique key (it
    names its holder) needs a job record at once; any other job is lean (runtime/lean.py) unless its queue's
    name would make an id that a URL path cannot carry (a lean id holds the queue name)."""
    if not lean.URL_SAFE.match(queue):
        return True
    return bool(opts) and any(k in json.loads(opts) for k in ("d", "dl", "uk"))


def priority_level(priority: str | int) -> int:
    if isinstance(priority, int) and 0 <= priority < len(PRIORITIES):
        return priority
    if priority in PRIORITIES:
        return PRIORITIES.index(str(priority))
    raise ValueError(f"priority {priority!r} is not one of {', '.join(PRIORITIES)}")


class Submitter:
    """Builds job fields and calls the enqueue script, paging so no call has over ~1,000 arguments."""

    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts, settings: PayloadSettings) -> None:
        self.redis, self.keys, self.scripts, self.settings = redis, keys, scripts, settings

    def prepare(
        self,
        target: TaskLike | Call[Any],
        kwargs: Mapping[str, Any],
        options: JobOptions,
        specs: dict[tuple[int, int], Spec] | None = None,
    ) -> Prepared:
        """Check one job and encode it; `specs` caches the (task, options) part across a bulk call."""
        task: Task[Any, Any] | None
        if isinstance(target, Call):
            task, kwargs = target.task, {**target.kwargs, **kwargs}
        elif isinstance(target, Task):
            task = target
        elif isinstance(target, str):
            task = None
        else:
            raise TypeError(f"expected a task, a task name or task.call(...), got {type(target).__name__}")
        cache_key = (id(task if task is not None else target), id(options))
        spec = specs.get(cache_key) if specs is not None else None
        if spec is None:
            spec = self._spec(task, target, options)
            if specs is not None:
                specs[cache_key] = spec
        version = None
        if task is not None:
            validator(task).validate(kwargs)
            version = task.options.version
        payload = payloads.encode(dict(kwargs), self.settings, version)
        return Prepared(spec, new_job_id() if needs_record(spec[3], spec[1]) else "", payload, task)

    def _spec(self, task: Task[Any, Any] | None, target: object, options: JobOptions) -> Spec:
        name = task.name if task is not None else check_part("task name", str(target))
        queue = options.queue or (task.options.queue if task else None) or DEFAULT_QUEUE
        priority = options.priority or (task.options.priority if task else None) or "normal"
        return (name, check_part("queue name", queue), priority_level(priority), opts_json(options, task))

    async def submit(self, jobs: Sequence[Prepared], atomic: bool) -> list[JobId[Any]]:
        if len(jobs) > MAX_BULK:
            raise ValueError(f"{len(jobs)} jobs in one call; the limit is {MAX_BULK}")
        if not jobs:
            return []
        pages = _pages(jobs, MAX_SCRIPT_ARGS - 6)
        if atomic and len(pages) > 1:
            replies = [await self._staged(_page_args(jobs))]
        else:
            replies = await self._paged([_page_args(p) for p in pages], "all" if atomic else "each")
        flat = [s for reply in replies for s in reply[1:]]
        results = [_result(job, status) for job, status in zip(jobs, flat, strict=True)]
        if any(reply[0] == "aborted" for reply in replies):
            problems = [r for r in results if not r.accepted]
            first = problems[0] if problems else results[0]
            raise BulkRejected(
                f"{len(problems)} of {len(jobs)} jobs refused, nothing submitted "
                f"(first: job {first} {first.status}: {first.detail})",
                results,
            )
        return results

    async def _paged(self, pages: list[list[str | int]], mode: str) -> list[list[str]]:
        head = [self.keys.prefix, now_ms(), mode, self.settings.max_bytes]
        if len(pages) == 1:
            return [await self.scripts.call("enqueue", [], [*head, *pages[0]])]
        await self.scripts.ensure_loaded()
        async with self.redis.pipeline(transaction=False) as pipe:
            for page in pages:
                self.scripts.queue(pipe, "enqueue", [], [*head, *page])
            return list(await pipe.execute())

    async def _staged(self, fields: list[str | int]) -> list[str]:
        """All or nothing for a batch too big for one call: push the fields to a staging list (pages of
        1,000), then one script call checks and writes every job. A client that dies before the last call
        leaves only the staging list, which expires."""
        stage = self.keys.staging(uuid.uuid4().hex)
        await self.scripts.ensure_loaded()
        async with self.redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(fields), MAX_SCRIPT_ARGS):
                pipe.rpush(stage, *fields[start : start + MAX_SCRIPT_ARGS])
            pipe.pexpire(stage, 60_000)
            head = [self.keys.prefix, now_ms(), "all", self.settings.max_bytes, len(fields)]
            self.scripts.queue(pipe, "enqueue", [stage], head)
            replies = await pipe.execute()
        return list(replies[-1])


def _pages(jobs: Sequence[Prepared], limit: int) -> list[Sequence[Prepared]]:
    """Split jobs so each page's specs (4 fields each, once per page) and jobs (1 field) fit `limit`."""
    pages: list[Sequence[Prepared]] = []
    start, seen = 0, set[Spec]()
    for i, job in enumerate(jobs):
        cost = len(seen) * 4 + (i - start) + 1 + (0 if job.spec in seen else 4)
        if cost > limit:
            pages.append(jobs[start:i])
            start, seen = i, set[Spec]()
        seen.add(job.spec)
    pages.append(jobs[start:])
    return pages


def _page_args(jobs: Sequence[Prepared]) -> list[str | int]:
    index: dict[Spec, int] = {}
    rows: list[str | int] = []
    for job in jobs:
        n = index.setdefault(job.spec, len(index))
        rows.append(f"{job.job_id or '.'}{n}|{job.payload}")  # '.': lean, the script makes its id
    specs: list[str | int] = [v for spec in index for v in spec]
    return [len(specs), *specs, *rows]


def opts_json(options: JobOptions, task: Task[Any, Any] | None) -> str:
    """The options a job carries, compactly (most jobs carry none: an empty string)."""
    o: dict[str, Any] = {}
    t = task.options if task is not None else None
    if options.delay is not None:
        delay = to_ms(options.delay, "delay")
        if delay > 0:
            o["d"] = delay
    deadline = options.deadline if options.deadline is not None else None
    deadline_ms = to_ms(deadline, "deadline") if deadline is not None else (t.deadline_ms if t else None)
    if deadline_ms:
        o["dl"] = deadline_ms
    timeout_ms = (
        to_ms(options.timeout, "timeout") if options.timeout is not None else (t.timeout_ms if t else None)
    )
    if timeout_ms:
        o["t"] = timeout_ms
    retry = options.retry or (t.retry if t else None)
    if retry is not None and (retry.kind != "none" or retry.rules or retry.never):
        o["r"] = retry.model_dump(mode="json", exclude_defaults=True)
    dead_letter = options.dead_letter or (t.dead_letter if t else None)
    if dead_letter:
        o["dlq"] = check_part("dead-letter queue name", dead_letter)
    if options.unique is not None:
        u = options.unique
        o.update(uk=u.key, ut=to_ms(u.within), uc=u.conflict)
    return json.dumps(o, separators=(",", ":")) if o else ""


def _result(job: Prepared, status: str) -> JobId[Any]:
    kind, _, detail = status.partition(":")
    if kind == "ok":
        if detail:  # a lean job: its id names the entry it got
            return JobId(lean.lean_id(job.spec[1], job.spec[2], detail), task=job.task)
        return JobId(job.job_id, task=job.task)
    if kind == "skip":
        return JobId(detail, "skipped", f"a job with this unique key exists: {detail}", job.task)
    if kind == "reject":
        return JobId(job.job_id, "rejected", f"job {detail} holds the unique key", job.task)
    return JobId(job.job_id, "error", detail, job.task)


JOB_FIELDS = (
    "state",
    "attempt",
    "result",
    "error",
    "reason",
    "task",
    "queue",
    "prio",
    "run",
    "name",
    "worker",
    "enqueued",
    "started",
    "finished",
    "due",
)


def queue_job_read(pipe: Any, keys: Keys, job_id: str) -> bool:
    """Queue the reads `job_row` needs on a pipeline (sync or asyncio); True when the id is a lean one."""
    is_lean = lean.queue_lookup(pipe, keys, job_id)
    pipe.hmget(keys.job(job_id), *JOB_FIELDS)
    return is_lean


def job_row(job_id: str, replies: Sequence[Any], is_lean: bool) -> Sequence[Any]:
    """The JOB_FIELDS of a job from those reads: its record, or a queued lean job's entry."""
    row: Sequence[Any] = replies[-1]
    if row[0] is None and is_lean:  # no record: a lean job queued (its entry), or none at all
        found = lean.record(job_id, replies[0])
        if found:
            return [found.get(f) for f in JOB_FIELDS]
    return row


def job_info(job_id: str, row: Sequence[Any], settings: PayloadSettings) -> JobInfo:
    state, attempt, result, error, reason, task, queue, prio, run, name, worker, *times = row
    if state is None:
        raise JobNotFound(f"no job {job_id}")
    value = None
    if result is not None:
        try:
            value = payloads.value(result, settings)
        except payloads.PayloadError as err:
            value = f"<unreadable result: {err}>"
    return JobInfo(
        name=name or task or "",
        state=state,
        attempt=int(attempt or 0),
        result=value,
        error=json.loads(error) if error else None,
        reason=reason,
        id=job_id,
        task=task or "",
        queue=queue or "",
        priority=PRIORITIES[int(prio)] if prio not in (None, "") else "",
        run_id=run or "",
        worker=worker or "",
        enqueued_ms=_int(times[0]),
        started_ms=_int(times[1]),
        finished_ms=_int(times[2]),
        due_ms=_int(times[3]),
    )


def _int(value: str | None) -> int | None:
    return None if value in (None, "") else int(str(value))
