"""The REST routes that change things: submit a job, cancel jobs and runs, change a queued job's
priority, replay dead-lettered jobs. Each is one call of the Client (runtime/client.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import AfterValidator, BaseModel, Field

from tqflow.plan import PRIORITIES
from tqflow.runtime.api.routes import ID, NAME, JobId, RunId, Svc, well_formed
from tqflow.runtime.catalog import published_names, unregistered_message
from tqflow.runtime.limits import Limit, Limiter, Rate, fair_share, limits_of
from tqflow.runtime.views import DeadJob, Page

router = APIRouter(prefix="/api")
Priority = Annotated[str, Field(pattern="^(" + "|".join(PRIORITIES) + ")$")]
DlqName = Annotated[
    str | None, Query(pattern=NAME, description="A named dead-letter queue; default: the default one")
]


class LimitBody(BaseModel):
    """One limiter a job takes: `{"name": "api", "rate": 100, "per": "s", "key": "customer-7"}` or
    `{"name": "db", "concurrency": 3}` (runtime/limits.py)."""

    name: str = Field(pattern=NAME, description="The limiter's name (shared by every job that names it)")
    key: str | int | None = Field(default=None, description="One bucket per key; none: one for the limiter")
    rate: int | None = Field(default=None, ge=1, description="Admissions per `per`")
    per: str = Field(default="s", max_length=20, description="s, m, h or a duration (`10s`)")
    burst: int | None = Field(default=None, ge=1, description="The bucket's size (default: `rate`)")
    concurrency: int | None = Field(default=None, ge=1, description="Jobs running at once, per key")


class SubmitJob(BaseModel):
    task: str = Field(pattern=NAME, description="A task name the workers know (`module.function`)")
    kwargs: dict[str, Any] = Field(default_factory=dict, max_length=200, description="The task's arguments")
    queue: str | None = Field(default=None, pattern=NAME)
    priority: Priority | None = None
    delay_ms: int | None = Field(default=None, ge=0, le=366 * 86_400_000)
    dead_letter: str | None = Field(default=None, pattern=NAME)
    codec: Literal["json", "msgpack"] | None = Field(
        default=None, description="How the arguments are stored (default: the task's, else JSON)"
    )
    compression: Literal["none", "zlib", "zstd"] | None = None
    depends_on: list[Annotated[str, Field(pattern=ID), AfterValidator(well_formed)]] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Job ids this job waits for: it is skipped when one does not succeed",
    )
    allow_failure: bool = Field(
        default=False, description="Run once the dependencies ended, whatever their state"
    )
    keep_result: bool | None = Field(
        default=None,
        description="false: a success at the first attempt that no one waits for leaves no record"
        " (the job then reads as not found); default: the task's",
    )
    limit: list[LimitBody] | None = Field(
        default=None,
        max_length=8,
        description="Limiters the job takes before it starts (replaces the task's)",
    )
    fair_key: str | int | None = Field(
        default=None, description="Jobs of one queue and priority are served round robin across fair keys"
    )
    weight: float | None = Field(default=None, gt=0, le=1e6, description="Its fair key's weight (default 1)")


def _limits(body: list[LimitBody]) -> list[Limit]:
    out = []
    for i, item in enumerate(body):
        try:
            rate = Rate(item.rate, item.per, item.burst) if item.rate is not None else None
            limiter = Limiter(item.name, rate=rate, concurrency=item.concurrency)
            out.append(limiter.by(item.key) if item.key is not None else Limit(limiter))
        except (ValueError, TypeError) as err:
            raise _invalid(["limit", i], str(err)) from None
    return out


class Submitted(BaseModel):
    id: str


class Status(BaseModel):
    id: str
    status: str


class NewPriority(BaseModel):
    priority: Priority


class Replayed(BaseModel):
    replayed: dict[str, str]  # job id -> status (replayed, or why not)


class ReplayMany(BaseModel):
    name: str | None = Field(default=None, pattern=NAME, description="A named dead-letter queue")
    task: str | None = Field(default=None, pattern=NAME, description="Only jobs of this task")
    ids: list[Annotated[str, Field(pattern=ID), AfterValidator(well_formed)]] | None = Field(
        default=None, max_length=1000
    )


def _invalid(where: list[str | int], message: str) -> HTTPException:
    return HTTPException(422, [{"type": "value_error", "loc": ["body", *where], "msg": message}])


@router.post("/jobs", tags=["jobs"], status_code=201)
async def submit_job(svc: Svc, body: SubmitJob) -> Submitted:
    """Submit a standalone job of a task the workers registered (422 naming the field otherwise: an
    unknown task, a missing or unknown argument, an argument of the wrong type). The job gets the task's
    own retry, timeout, queue, priority and dead-letter queue unless the body sets them."""
    catalog = svc.client.submitter.catalog
    await catalog.load(svc.redis, (body.task,))
    published = catalog.cached(body.task)
    if published is None:
        known = await published_names(svc.redis, svc.client.keys)
        raise _invalid(["task"], unregistered_message(body.task, known))
    problem = published.problem(body.kwargs)
    if problem is not None:
        field, message = problem
        path: list[str | int] = (
            ["kwargs", *field.replace("[", ".").replace("]", "").split(".")] if field else []
        )
        raise _invalid(path or ["kwargs"], message)
    delay = body.delay_ms / 1000 if body.delay_ms else None
    limits = _limits(body.limit) if body.limit is not None else None
    try:
        limits_of(limits)
    except ValueError as err:
        raise _invalid(["limit"], str(err)) from None
    try:
        fair_share(body.fair_key, body.weight)
    except ValueError as err:
        raise _invalid(["fair_key"], str(err)) from None
    try:
        job = await svc.client.enqueue(
            body.task,
            queue=body.queue,
            priority=body.priority,
            delay=delay,
            dead_letter=body.dead_letter,
            limit=limits,
            fair_key=body.fair_key,
            weight=body.weight,
            codec=body.codec,
            compression=body.compression,
            depends_on=body.depends_on,
            allow_failure=body.allow_failure or None,
            keep_result=body.keep_result,
            **body.kwargs,
        )
    except ValueError as err:  # refused by the enqueue script: a dependency that does not exist, …
        raise _invalid(["depends_on"] if "depend" in str(err) else [], str(err)) from err
    return Submitted(id=str(job))


@router.post("/jobs/{job_id}/cancel", tags=["jobs"])
async def cancel_job(svc: Svc, job_id: JobId) -> Status:
    """Cancel a job: `cancelled`, `cancelling` (its worker stops it), or the state it had already ended in."""
    return Status(id=job_id, status=await svc.client.cancel(job_id))


@router.post("/jobs/{job_id}/priority", tags=["jobs"])
async def reprioritize(svc: Svc, job_id: JobId, body: NewPriority) -> Status:
    """Change the priority of a job that has not started (409 once it has)."""
    await svc.inspector.job(job_id)  # 404 for a job that does not exist
    try:
        return Status(id=job_id, status=await svc.client.reprioritize(job_id, body.priority))
    except ValueError as err:  # it started or ended already
        raise HTTPException(409, str(err)) from err


@router.post("/runs/{run_id}/cancel", tags=["runs"])
async def cancel_run(svc: Svc, run_id: RunId) -> Status:
    await svc.inspector.run(run_id)  # 404 for a run that does not exist
    return Status(id=run_id, status=await svc.client.cancel_run(run_id))


@router.get("/dlq/names", tags=["dlq"])
async def dlq_names(svc: Svc) -> list[str]:
    """The named dead-letter queues (jobs with `dead_letter "name"`); the default one has no name."""
    return await svc.inspector.dlq_names()


@router.get("/dlq", tags=["dlq"])
async def list_dlq(
    svc: Svc,
    name: DlqName = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[DeadJob]:
    return await svc.inspector.dlq(name=name, offset=offset, limit=limit)


@router.post("/dlq/{job_id}/replay", tags=["dlq"])
async def replay_one(
    svc: Svc,
    job_id: JobId,
    name: DlqName = None,
    seen: Annotated[int | None, Query(ge=0, le=2**53)] = None,
) -> Replayed:
    """Put one dead-lettered job back on its queue with a fresh attempt count. `seen`: the `finished_ms` of
    the DLQ entry the caller saw; the job is then replayed only if it is still that dead-lettering (else
    `already-replayed`), so parallel replays of one entry enqueue it once."""
    seen_map = None if seen is None else {job_id: seen}
    return Replayed(replayed=await svc.client.replay([job_id], name, seen=seen_map))


@router.post("/dlq/replay", tags=["dlq"])
async def replay_many(svc: Svc, body: ReplayMany) -> Replayed:
    """Replay the given jobs, or every job of a dead-letter queue (optionally only one task's)."""
    if body.ids is not None:
        return Replayed(replayed=await svc.client.replay(body.ids, body.name))
    return Replayed(replayed=await svc.client.replay_all(body.name, body.task))
