"""Standalone jobs: submit a task outside any flow, alone or in bulk, and read it back.

A queued standalone job without a delay, a deadline or a unique key is "lean": one stream entry holding
its task, payload and options, and no record until it starts (see runtime/store/lean.py). Any other costs one
small hash (task, payload, queue, priority, state, times, stream entry id, `opts`) and, when queued, one
stream entry holding its 16-character id. Neither has a run record.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from redis import Redis as SyncRedis
from redis.asyncio import Redis

from tqflow.errors import ClientError, UsageError, UsageTypeError
from tqflow.errors import JobNotFound as JobNotFound  # its home is the error tree; importable from here too
from tqflow.plan import DEFAULT_PRIORITY, DEFAULT_QUEUE, Priority, RetryPlan
from tqflow.plan.durations import Duration, to_ms
from tqflow.runtime import replication
from tqflow.runtime.catalog import CatalogCache, Published
from tqflow.runtime.clock import clock_stale, sync_clock, sync_clock_sync
from tqflow.runtime.limits import Limit, fair_share, limits_of, wire_of
from tqflow.runtime.replication import Replication
from tqflow.runtime.resend import Lanes, new_nonce, resend, resend_sync
from tqflow.runtime.runs import JobInfo, now_ms
from tqflow.runtime.store import calls as script_calls
from tqflow.runtime.store import jobrows, lean, payloads, records
from tqflow.runtime.store.calls import Arg, ScriptCall
from tqflow.runtime.store.keys import Keys, check_part
from tqflow.runtime.store.payloads import PayloadSettings
from tqflow.runtime.store.records import JOB_FIELDS, JobRecord, needs_record
from tqflow.runtime.store.scripts import Scripts, SyncScripts
from tqflow.runtime.task import Call, Task, TaskOptions
from tqflow.runtime.validation import validator

R = TypeVar("R")
MAX_SCRIPT_ARGS = 1000  # no script call gets more arguments than about this (Lua's stack, dramatiq #258)
JOBS_PER_PAGE = MAX_SCRIPT_ARGS - 10  # jobs of one spec that fit one call
MAX_BULK = 100_000
CONFLICTS = ("skip", "reject", "replace")

TaskLike = Task[Any, Any] | str
BulkItem = (
    tuple[TaskLike | Call[Any], Mapping[str, Any]]
    | tuple[TaskLike | Call[Any], Mapping[str, Any], Mapping[str, Any]]
    | Call[Any]
)


class JobError(ClientError):
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


class JobRejected(ClientError, ValueError):
    """A unique job was refused because another job holds its key (conflict=reject)."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


class BulkRejected(ClientError, ValueError):
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
            raise UsageError(f"conflict {self.conflict!r} is not one of {', '.join(CONFLICTS)}")
        if to_ms(self.within, "unique within") <= 0:
            raise UsageError(f"unique key {self.key!r}: `within` must be longer than 0, got {self.within!r}")


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
    limit: tuple[Limit, ...] | None = None  # replaces the task's own limits when given
    fair_key: str | None = None  # fair share across keys within its queue and level (lua/fair.lua)
    weight: float | None = None  # its key's weight in the fair share (default 1)
    codec: str | None = None  # json, msgpack or pickle: its arguments (and, unless its task says, result)
    compression: str | None = None  # none, zlib or zstd
    depends_on: tuple[str, ...] | None = None  # job ids that must end first (see `dependencies`)
    allow_failure: bool | None = None  # True: run once they ended, whatever their state
    keep_result: bool | None = None  # False: a first-attempt success leaves no end record (None: the task's)


NO_OPTIONS = JobOptions()
OPTION_NAMES = tuple(field.name for field in dataclasses.fields(JobOptions))  # enqueue's keyword options
OPTION_SET = frozenset(OPTION_NAMES)
MAX_DEPENDENCIES = 100


def job_options(given: Mapping[str, Any]) -> JobOptions:
    """The job options among a call's arguments, each `JobOptions` field by its name (None when absent):
    `locals()` of `Client.enqueue`, or a SyncClient call's keywords. So an option is added in one place
    (a field here, and its parameter on the signatures). The shared `NO_OPTIONS` when none is given
    (most calls: no new object, and a SyncClient call that names none costs one set test)."""
    if given.keys().isdisjoint(OPTION_SET):
        return NO_OPTIONS
    values = {name: given.get(name) for name in OPTION_NAMES}
    if all(value is None for value in values.values()):  # `locals()` of a call that gave none
        return NO_OPTIONS
    if values["keep_result"] is not None and not isinstance(values["keep_result"], bool):
        raise UsageTypeError(f"keep_result must be True or False, got {values['keep_result']!r}")
    values["fair_key"], values["weight"] = fair_share(values["fair_key"], values["weight"])
    values["limit"] = limits_of(values["limit"])
    if values["depends_on"] is not None:
        values["depends_on"] = dependencies(values["depends_on"])
    elif values["allow_failure"]:
        raise UsageError("allow_failure applies to depends_on: give the jobs it waits for")
    return JobOptions(**values)


def dependencies(ids: Sequence[str] | str) -> tuple[str, ...]:
    """`depends_on` checked: job ids (a JobId is one), each once, in order. The job waits until they have
    all ended; it is skipped when one did not succeed (dead-lettered, cancelled, skipped) unless it
    allows failures. Its dependencies must exist when it is sent (an earlier call, or a flow's job)."""
    if isinstance(ids, str):
        raise UsageTypeError("depends_on takes a list of job ids, not one string")
    found = tuple(dict.fromkeys(check_part("dependency job id", str(i)) for i in ids))
    if not found:
        raise UsageError("depends_on is empty: give the ids of the jobs it waits for, or leave it out")
    if len(found) > MAX_DEPENDENCIES:
        raise UsageError(f"{len(found)} dependencies; a job may have at most {MAX_DEPENDENCIES}")
    return found


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


Policy = TaskOptions | Published  # a task's own policies: from its Task object, or as a worker published it


class Refused:
    """A best-effort bulk item that could not be prepared (a bad argument, an unknown priority …): it is
    not sent, and its result says why (status `error`) while the other jobs of the call go on."""

    __slots__ = ("detail", "task")

    def __init__(self, detail: str, task: Task[Any, Any] | None = None) -> None:
        self.detail, self.task = detail, task


def with_refused(
    jobs: Sequence[Prepared | Refused], send: Callable[[list[Prepared]], list[JobId[Any]]]
) -> list[JobId[Any]]:
    """Send the prepared jobs (`send`) and give the refused ones their `error` result, in call order."""
    good = [job for job in jobs if isinstance(job, Prepared)]
    sent = iter(send(good) if good else [])
    return [
        next(sent) if isinstance(job, Prepared) else JobId("", "error", job.detail, job.task) for job in jobs
    ]


class Known:
    """What one (task, options) pair always gives: its spec, its argument check, payload version and
    payload settings (the call's codec and compression, else the task's, else the client's)."""

    __slots__ = ("record", "settings", "spec", "validate", "version")

    def __init__(
        self,
        spec: Spec,
        task: Task[Any, Any] | None,
        published: Published | None,
        settings: PayloadSettings,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.record = needs_record(spec[3], spec[1])  # else lean: no id until the script gives one
        self.validate = (
            validator(task).validate
            if task is not None
            else (published.validate if published is not None else None)
        )
        self.version = (
            task.options.version if task is not None else (published.version if published else None)
        )


KNOWN_LIMIT = 4096  # (task, options) pairs a builder remembers before it starts over


class Batch:
    """What one submission sends: `calls` (each the ARGV of one enqueue script call), or for an all-or-
    nothing submission too big for one call, the `staged` fields and one call that commits them: the
    fields go to a staging list (pages of 1,000), then one script call checks and writes every job. A
    client that dies before the last call leaves only the staging list, which expires."""

    __slots__ = ("calls", "jobs", "lanes", "stage", "staged")

    def __init__(
        self,
        jobs: Sequence[Prepared],
        calls: list[ScriptCall],
        stage: str | None = None,
        staged: list[str | int] | None = None,
        lanes: list[int] | None = None,
    ) -> None:
        self.jobs, self.calls, self.stage, self.staged = jobs, calls, stage, staged
        self.lanes = lanes or []  # the client's lanes its calls use (runtime/resend.py), given back after

    @property
    def single(self) -> ScriptCall | None:
        """The call when the batch is one script call (sent alone: no pipeline, no script check)."""
        return self.calls[0] if self.stage is None and len(self.calls) == 1 else None

    def fill(self, pipe: Any, scripts: Scripts | SyncScripts) -> None:
        """Queue the batch on a pipeline (sync or asyncio: queueing is the same)."""
        if self.stage is None or self.staged is None:
            for call in self.calls:
                scripts.queue(pipe, call)
            return
        pipe.delete(self.stage)  # a re-send (runtime/resend.py) must not stage its fields twice
        for start in range(0, len(self.staged), MAX_SCRIPT_ARGS):
            pipe.rpush(self.stage, *self.staged[start : start + MAX_SCRIPT_ARGS])
        pipe.pexpire(self.stage, 60_000)
        scripts.queue(pipe, self.calls[0])

    def replies(self, executed: Sequence[Any]) -> list[list[str]]:
        """The script replies among a pipeline's replies."""
        return [executed[-1]] if self.stage is not None else list(executed)

    def results(self, replies: Sequence[Sequence[str]]) -> list[JobId[Any]]:
        return parse_replies(self.jobs, replies)

    def split(self, executed: list[Any], wait: Replication) -> tuple[list[list[str]], Any]:
        """(the script replies, WAIT's reply or None) of a pipeline's replies."""
        if wait.replicas:
            return self.replies(executed[:-1]), executed[-1]
        return self.replies(executed), None

    def checked(
        self, wait: Replication, replies: Sequence[Sequence[str]], acknowledged: Any
    ) -> list[JobId[Any]]:
        """The jobs' ids; NotReplicated (with them) when fewer replicas than asked acknowledged the submit."""
        results = self.results(replies)
        if acknowledged is not None:
            replication.check(wait, acknowledged, [str(r) for r in results if r.accepted])
        return results


class JobBuilder:
    """The I/O-free half of submitting, shared by the asyncio `Submitter` and the sync client
    (runtime/sync.py): checks and encodes jobs, builds the enqueue script's arguments (paging so no call
    has over ~1,000 arguments) and reads its replies."""

    def __init__(self, keys: Keys, settings: PayloadSettings) -> None:
        self.keys, self.settings = keys, settings
        self.lanes = Lanes()
        self._known: dict[tuple[object, JobOptions, Published | None], Known] = {}
        # tasks sent by name take the policies their workers published (runtime/catalog.py); the client
        # loads the names it is about to send (`catalog.load`) before it prepares them
        self.catalog = CatalogCache(keys)

    def prepare(
        self,
        target: TaskLike | Call[Any],
        kwargs: Mapping[str, Any],
        options: JobOptions,
        specs: dict[tuple[int, int], Known] | None = None,
    ) -> Prepared:
        """Check one job and encode it. The (task, options) part is worked out once: `specs` caches it
        across a bulk call; without it, the builder remembers it by value (options that cannot be hashed,
        such as a retry plan, are worked out each time)."""
        task: Task[Any, Any] | None
        if isinstance(target, Call):
            task, kwargs = target.task, {**target.kwargs, **kwargs}
        elif isinstance(target, Task):
            task = target
        elif isinstance(target, str):
            task = None
        else:
            raise UsageTypeError(
                f"expected a task, a task name or task.call(...), got {type(target).__name__}"
            )
        published = self.catalog.cached(target) if task is None and isinstance(target, str) else None
        known = self._known_for(task, target, options, specs, published)
        if known.validate is not None:
            known.validate(kwargs)
        payload = payloads.encode(dict(kwargs), known.settings, known.version)
        return Prepared(known.spec, new_job_id() if known.record else "", payload, task)

    def _known_for(
        self,
        task: Task[Any, Any] | None,
        target: object,
        options: JobOptions,
        specs: dict[tuple[int, int], Known] | None,
        published: Published | None = None,
    ) -> Known:
        if specs is not None:
            key = (id(task if task is not None else target), id(options))
            known = specs.get(key)
            if known is None:
                known = specs[key] = self._work_out(task, target, options, published)
            return known
        value_key = (task if task is not None else target, options, published)
        try:
            hit = self._known.get(value_key)
        except TypeError:  # unhashable options (a retry plan holds lists)
            return self._work_out(task, target, options, published)
        if hit is None:
            if len(self._known) >= KNOWN_LIMIT:
                self._known.clear()
            hit = self._known[value_key] = self._work_out(task, target, options, published)
        return hit

    def _work_out(
        self, task: Task[Any, Any] | None, target: object, options: JobOptions, published: Published | None
    ) -> Known:
        policy: Policy | None = task.options if task is not None else published
        settings = self.settings.choose(
            options.codec or (policy.codec if policy else None),
            options.compression or (policy.compression if policy else None),
        )
        return Known(self._spec(task, target, options, policy), task, published, settings)

    def _spec(
        self, task: Task[Any, Any] | None, target: object, options: JobOptions, policy: Policy | None
    ) -> Spec:
        name = task.name if task is not None else check_part("task name", str(target))
        queue = options.queue or (policy.queue if policy else None) or DEFAULT_QUEUE
        priority = options.priority or (policy.priority if policy else None) or DEFAULT_PRIORITY
        level = int(Priority.parse(priority))
        return (name, check_part("queue name", queue), level, opts_json(options, policy))

    @staticmethod
    def names(target: object, calls: Sequence[BulkItem] = ()) -> list[str]:
        """The task names (not Task objects) among one target or a bulk call's items: what to load."""
        found = [target] if isinstance(target, str) else []
        for item in calls:
            if not isinstance(item, Call) and isinstance(item[0], str):
                found.append(item[0])
        return [str(n) for n in found]

    def prepare_many(
        self, calls: Sequence[BulkItem], options: JobOptions, atomic: bool = True
    ) -> list[Prepared | Refused]:
        """`enqueue_many`'s items: `task.call(...)`, `(task_or_name, kwargs)` or `(…, kwargs, overrides)`.
        All or nothing (`atomic`): the first bad item raises. Best effort: a bad item becomes `Refused`."""
        jobs: list[Prepared | Refused] = []
        specs: dict[tuple[int, int], Known] = {}
        for item in calls:
            own = options
            target: TaskLike | Call[Any]
            kwargs: Mapping[str, Any]
            if isinstance(item, Call):
                target, kwargs = item, {}
            elif len(item) == 3:
                target, kwargs, overrides = item
                if overrides.get("depends_on") is not None:
                    overrides = {**overrides, "depends_on": dependencies(overrides["depends_on"])}
                if "limit" in overrides:
                    overrides = {**overrides, "limit": limits_of(overrides["limit"])}
                if "fair_key" in overrides or "weight" in overrides:
                    key, weight = fair_share(
                        overrides.get("fair_key", options.fair_key), overrides.get("weight", options.weight)
                    )
                    overrides = {**overrides, "fair_key": key, "weight": weight}
                own = dataclasses.replace(options, **overrides)
            else:
                target, kwargs = item[0], item[1]
            try:
                jobs.append(self.prepare(target, kwargs, own, specs if own is options else None))
            except (ValueError, TypeError) as err:
                if atomic:
                    raise
                owner = target.task if isinstance(target, Call) else target
                jobs.append(Refused(str(err), owner if isinstance(owner, Task) else None))
        return jobs

    def batch(self, jobs: Sequence[Prepared], atomic: bool) -> Batch:
        if len(jobs) > MAX_BULK:
            raise UsageError(f"{len(jobs)} jobs in one call; the limit is {MAX_BULK}")
        if not jobs:
            return Batch(jobs, [])
        mode = "all" if atomic else "each"
        if len(jobs) == 1:
            lanes = self.lanes.take(1)
            return Batch(jobs, [self._call(lanes[0], self._head(mode), _page_args(jobs))], lanes=lanes)
        pages = _pages(jobs, MAX_SCRIPT_ARGS - 7)
        if atomic and len(pages) > 1:
            fields = _page_args(jobs)
            stage = self.keys.staging(uuid.uuid4().hex)
            lanes = self.lanes.take(1)
            call = self._call(lanes[0], self._head(mode), [len(fields)], stage)
            return Batch(jobs, [call], stage, fields, lanes)
        head = self._head(mode)
        lanes = self.lanes.take(len(pages))
        calls = [self._call(lane, head, _page_args(page)) for lane, page in zip(lanes, pages, strict=True)]
        return Batch(jobs, calls, lanes=lanes)

    def _call(self, lane: int, head: list[Arg], fields: list[Arg], stage: str | None = None) -> ScriptCall:
        return script_calls.enqueue(self.keys, self.lanes.name(lane), new_nonce(), head, fields, stage)

    def _head(self, mode: str) -> list[Arg]:
        return [now_ms(), mode, self.settings.max_bytes]


class Submitter(JobBuilder):
    """Submits jobs with the asyncio client: one script call alone, or one pipeline of them."""

    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts, settings: PayloadSettings) -> None:
        super().__init__(keys, settings)
        self.redis, self.scripts = redis, scripts

    async def submit(self, jobs: Sequence[Prepared | Refused], atomic: bool) -> list[JobId[Any]]:
        if clock_stale():  # due times by Redis's clock, not this host's (F23)
            await sync_clock(self.redis)
        if all(isinstance(job, Prepared) for job in jobs):
            batch = self.batch(typing.cast(Sequence[Prepared], jobs), atomic)
            return await self._send(batch)
        good = [job for job in jobs if isinstance(job, Prepared)]
        batch = self.batch(good, atomic)
        results = await self._send(batch) if good else []
        return with_refused(jobs, lambda _: results)

    async def _send(self, batch: Batch) -> list[JobId[Any]]:
        if not batch.calls:
            return []
        try:  # each call's nonce makes a re-send safe
            replies, acknowledged = await resend(lambda: self._send_once(batch))
        finally:
            self.lanes.give(batch.lanes)
        return batch.checked(replication.of(self.redis), replies, acknowledged)

    async def _send_once(self, batch: Batch) -> tuple[list[list[str]], Any]:
        wait = replication.of(self.redis)
        if batch.single is not None and not wait.replicas:
            return [await self.scripts.run(batch.single)], None
        await self.scripts.ensure_loaded()
        async with self.redis.pipeline(transaction=False) as pipe:
            batch.fill(pipe, self.scripts)
            if wait.replicas:  # on the same connection as the scripts: WAIT counts this client's writes
                pipe.execute_command(*wait.command())
            executed = await pipe.execute()
        return batch.split(executed, wait)


class SyncSubmitter(JobBuilder):
    """`Submitter` for the sync client (runtime/sync.py): the same batches on redis-py's sync client."""

    def __init__(self, redis: SyncRedis, keys: Keys, scripts: SyncScripts, settings: PayloadSettings) -> None:
        super().__init__(keys, settings)
        self.redis, self.scripts = redis, scripts

    def submit(self, jobs: Sequence[Prepared | Refused], atomic: bool) -> list[JobId[Any]]:
        if clock_stale():
            sync_clock_sync(self.redis)

        def send(good: list[Prepared]) -> list[JobId[Any]]:
            return self._send(self.batch(good, atomic))

        if all(isinstance(job, Prepared) for job in jobs):
            return send(typing.cast(list[Prepared], list(jobs)))
        return with_refused(jobs, send)

    def _send(self, batch: Batch) -> list[JobId[Any]]:
        if not batch.calls:
            return []
        try:
            replies, acknowledged = resend_sync(lambda: self._send_once(batch))
        finally:
            self.lanes.give(batch.lanes)
        return batch.checked(replication.of(self.redis), replies, acknowledged)

    def _send_once(self, batch: Batch) -> tuple[list[list[str]], Any]:
        wait = replication.of(self.redis)
        if batch.single is not None and not wait.replicas:
            return [self.scripts.run(batch.single)], None
        self.scripts.ensure_loaded()
        with self.redis.pipeline(transaction=False) as pipe:
            batch.fill(pipe, self.scripts)
            if wait.replicas:
                pipe.execute_command(*wait.command())  # type: ignore[no-untyped-call]
            return batch.split(pipe.execute(), wait)


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
    """The enqueue script's arguments for a page: spec field count, spec fields, one field a job."""
    if len(jobs) == 1:  # one-by-one enqueue: the common case, without the spec index
        return [4, *jobs[0].spec, _row(jobs[0], 0)]
    index: dict[Spec, int] = {}
    rows: list[str | int] = []
    for job in jobs:
        rows.append(_row(job, index.setdefault(job.spec, len(index))))
    specs: list[str | int] = [v for spec in index for v in spec]
    return [len(specs), *specs, *rows]


def _row(job: Prepared, spec_number: int) -> str:
    return f"{job.job_id or '.'}{spec_number}|{job.payload}"  # '.': a lean job, the script makes its id


def opts_json(options: JobOptions, policy: Policy | None) -> str:
    """The options a job carries (store/records.py writes them; most jobs carry none: ''): each one the
    call gives, else the task's own (its `@task(...)` options, from the Task or as its workers published
    them)."""
    t = policy
    deadline = options.deadline
    timeout = options.timeout
    dead_letter = options.dead_letter or (t.dead_letter if t else None)
    u = options.unique
    return records.options_json(
        delay_ms=to_ms(options.delay, "delay") if options.delay is not None else 0,
        deadline_ms=to_ms(deadline, "deadline") if deadline is not None else (t.deadline_ms if t else None),
        timeout_ms=to_ms(timeout, "timeout") if timeout is not None else (t.timeout_ms if t else None),
        retry=options.retry or (t.retry if t else None),
        retry_off=options.retry is not None,  # a call that turns retry off: the task's policy must not apply
        dead_letter=check_part("dead-letter queue name", dead_letter) if dead_letter else None,
        unique=(u.key, to_ms(u.within), u.conflict) if u is not None else None,
        depends_on=options.depends_on or (),
        allow_failure=bool(options.allow_failure),
        limits=wire_of(options.limit) if options.limit is not None else (t.limit_wire if t else None),
        fair=(options.fair_key, options.weight) if options.fair_key is not None else None,
        keep_result=(t.keep_result if t else True) if options.keep_result is None else options.keep_result,
    )


def parse_replies(jobs: Sequence[Prepared], replies: Sequence[Sequence[str]]) -> list[JobId[Any]]:
    """The enqueue script's replies (`["done"|"aborted", status per job]` per call) as one JobId a job;
    BulkRejected when an all-or-nothing submission was refused. The one reader of those replies: the
    asyncio and the sync client both go through here."""
    if len(replies) == 1 and len(jobs) == 1 and len(replies[0]) == 2 and replies[0][0] == "done":
        return [_result(jobs[0], replies[0][1])]  # one job, one call, landed: enqueue's common reply
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


def refusal(err: BulkRejected) -> ValueError:
    """What `enqueue` (one job) raises when the script refused its job: JobRejected or ValueError."""
    result = err.results[0]
    if result.status == "rejected":
        return JobRejected(f"job refused: {result.detail}", result.detail.split()[1])
    return ValueError(f"job refused: {result.detail}")


def _result(job: Prepared, status: str) -> JobId[Any]:
    if status[:1].isdigit():  # a lean job: its status is the id of the entry it got, which names it
        return JobId(lean.lean_id(job.spec[1], job.spec[2], status), task=job.task)
    kind, _, detail = status.partition(":")
    if kind == "ok":
        if detail:  # "ok:<entry id>": a lean status as an older library wrote it (a lane key a re-send reads)
            return JobId(lean.lean_id(job.spec[1], job.spec[2], detail), task=job.task)
        return JobId(job.job_id, task=job.task)
    if kind == "skip":
        return JobId(detail, "skipped", f"a job with this unique key exists: {detail}", job.task)
    if kind == "reject":
        return JobId(job.job_id, "rejected", f"job {detail} holds the unique key", job.task)
    return JobId(job.job_id, "error", detail, job.task)


def queue_job_read(pipe: Any, keys: Keys, job_id: str) -> bool:
    """Queue the reads `job_row` needs on a pipeline (sync or asyncio; execute it with
    `raise_on_error=False`, job_row raises what failed); True when the id is a lean one."""
    is_lean = lean.queue_lookup(pipe, keys, job_id)
    jobrows.queue_row(pipe, keys, job_id)
    return is_lean


def job_row(job_id: str, replies: Sequence[Any], is_lean: bool) -> Sequence[Any]:
    """The JOB_FIELDS of a job from those reads: its record, or a lean job's entry (queued or running)."""
    row: Sequence[Any] = lean.checked(replies[-1])
    if row[0] is None and is_lean:  # no record (or a waiter's flag alone): a lean job's entry, or no job
        found = lean.record(job_id, replies[0], replies[1])
        if found:
            return [found.get(f) for f in JOB_FIELDS]
    return row


def job_info(job_id: str, row: Sequence[Any], settings: PayloadSettings) -> JobInfo:
    record = JobRecord.parse(job_id, dict(zip(JOB_FIELDS, row, strict=True)))
    if record is None:
        raise JobNotFound(f"no job {job_id}")
    value = None
    if record.result is not None:
        try:
            value = payloads.value(record.result, settings)
        except payloads.PayloadError as err:
            value = f"<unreadable result: {err}>"
    return JobInfo(
        name=record.name or record.task,
        state=record.state,
        attempt=record.attempt,
        result=value,
        error=record.error,
        reason=record.reason,
        id=job_id,
        task=record.task,
        queue=record.queue,
        priority=record.priority,
        run_id=record.run,
        worker=record.worker,
        enqueued_ms=record.enqueued,
        started_ms=record.started,
        finished_ms=record.finished,
        due_ms=record.due,
    )


def outcome(job_id: str, info: JobInfo) -> Any:
    """An ended job's result (in its task's return type when `job_id` is a JobId that knows its task);
    JobFailed (with the error and traceback) when it was dead-lettered, JobCancelled / JobSkipped."""
    if info.state == "succeeded":
        task = job_id.task if isinstance(job_id, JobId) else None
        return validator(task).result_value(info.result) if task is not None else info.result
    if info.state == "dead":
        error = info.error or {}
        raise JobFailed(
            job_id,
            f"job {job_id} failed: {error.get('type', 'Error')}: {error.get('message', '')}",
            error,
        )
    if info.state == "cancelled":
        raise JobCancelled(job_id, f"job {job_id} was cancelled: {info.reason or ''}")
    raise JobSkipped(job_id, f"job {job_id} was skipped: {info.reason or ''}")


def cancel_status(job_id: str, reply: Sequence[Any]) -> str:
    """The cancel script's reply for one job."""
    [status] = reply
    if status == "missing":
        raise JobNotFound(f"no job {job_id}")
    return str(status)
