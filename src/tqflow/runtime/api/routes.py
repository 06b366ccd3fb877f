"""The REST routes under /api: runs, jobs, flows, workers, queues, the dead-letter queue, health."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AfterValidator, BaseModel, Field

from tqflow.errors import QueueNotFound, UsageError
from tqflow.runtime.api.services import Services
from tqflow.runtime.limit_inspect import LimitsOverview
from tqflow.runtime.store import lean
from tqflow.runtime.views import (
    FlowDetail,
    FlowSummary,
    JobView,
    Page,
    QueuesOverview,
    QueueStats,
    RunDetail,
    RunSummary,
    WorkerView,
)

ID = r"^[A-Za-z0-9_.:-]{1,256}$"  # a lean job's id holds its queue's name (up to 200) and its entry id
NAME = r"^[A-Za-z0-9_.-]{1,128}$"
U64 = 2**64


def well_formed(job_id: str) -> str:
    """A job id Redis can be asked about: a lean id's stream entry id must be two 64-bit numbers
    (`default.2.99999999999999999999999-0` is refused here, not by Redis with a 500)."""
    where = lean.parse(job_id)
    if where is not None:
        ms, _, seq = where[2].partition("-")
        if int(ms) >= U64 or int(seq) >= U64:
            raise UsageError(f"`{where[2]}` is not a stream entry id (two 64-bit numbers)")
    return job_id


RunId = Annotated[str, Path(pattern=ID, description="A run id"), AfterValidator(well_formed)]
JobId = Annotated[
    str,
    Path(pattern=ID, description="A job id (RUN_ID.JOB_NAME for a flow's job)"),
    AfterValidator(well_formed),
]
FlowName = Annotated[str, Path(pattern=NAME)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
Limit = Annotated[int, Query(ge=1, le=500)]
RUN_STATES = "^(running|succeeded|failed|cancelled)$"
JOB_STATES = "^(waiting|scheduled|queued|running|retrying|limited|awaiting|succeeded|dead|skipped|cancelled)$"

router = APIRouter(prefix="/api")


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


Svc = Annotated[Services, Depends(services)]


class Health(BaseModel):
    status: str
    redis: bool
    namespace: str


class StartRun(BaseModel):
    flow: str = Field(pattern=NAME, description="A deployed flow")
    params: dict[str, Any] = Field(default_factory=dict, max_length=200)
    version: int | None = Field(default=None, ge=1, le=10_000_000, description="Default: the current version")


class Started(BaseModel):
    id: str
    flow: str


@router.get("/health", tags=["health"])
async def health(svc: Svc) -> Health:
    try:
        ok = bool(await svc.redis.ping())
    except Exception:
        ok = False
    return Health(status="ok" if ok else "degraded", redis=ok, namespace=svc.inspector.keys.namespace)


@router.get("/runs", tags=["runs"])
async def list_runs(
    svc: Svc,
    flow: Annotated[str | None, Query(pattern=NAME)] = None,
    state: Annotated[str | None, Query(pattern=RUN_STATES)] = None,
    offset: Offset = 0,
    limit: Limit = 50,
    since: Annotated[int | None, Query(ge=0, le=2**53, description="Started at or after (Unix ms)")] = None,
    until: Annotated[int | None, Query(ge=0, le=2**53, description="Started at or before (Unix ms)")] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=200, description="In the run's id or parameters")
    ] = None,
) -> Page[RunSummary]:
    """Runs, newest first; filters: flow, state, a start-time window, text in the id or parameters."""
    return await svc.inspector.runs(
        flow=flow, state=state, offset=offset, limit=limit, since=since, until=until, search=q
    )


@router.post("/runs", tags=["runs"], status_code=201)
async def start_run(svc: Svc, body: StartRun) -> Started:
    """Start a run of a deployed flow with the given parameters."""
    run_id = await svc.client.start_run(body.flow, body.params, body.version)
    return Started(id=run_id, flow=body.flow)


@router.get("/runs/{run_id}", tags=["runs"])
async def get_run(svc: Svc, run_id: RunId) -> RunDetail:
    """A run with its jobs (state, attempts, last error) and the edges of its graph."""
    return await svc.inspector.run(run_id)


@router.get("/jobs", tags=["jobs"])
async def list_jobs(
    svc: Svc,
    run: Annotated[str | None, Query(pattern=ID)] = None,
    state: Annotated[str | None, Query(pattern=JOB_STATES)] = None,
    queue: Annotated[str | None, Query(pattern=NAME)] = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> Page[JobView]:
    """Jobs of one run, or jobs in a live state: queued, running, scheduled, retrying, limited, waiting (for
    their `depends_on`) or dead."""
    return await svc.inspector.jobs(run=run, state=state, queue=queue, offset=offset, limit=limit)


@router.get("/jobs/{job_id}", tags=["jobs"])
async def get_job(svc: Svc, job_id: JobId) -> JobView:
    return await svc.inspector.job(job_id)


@router.get("/jobs/{job_id}/children", tags=["jobs"])
async def job_children(svc: Svc, job_id: JobId, offset: Offset = 0, limit: Limit = 50) -> Page[JobView]:
    """A fan-out job's item jobs (`JOB_ID.0`, `.1`, …) with their states, in item order."""
    return await svc.inspector.children(job_id, offset=offset, limit=limit)


@router.get("/flows", tags=["flows"])
async def list_flows(svc: Svc) -> list[FlowSummary]:
    return await svc.inspector.flows()


@router.get("/flows/{name}", tags=["flows"])
async def get_flow(
    svc: Svc, name: FlowName, version: Annotated[int | None, Query(ge=1, le=10_000_000)] = None
) -> FlowDetail:
    """A flow's versions and the plan of one of them (default: the current one)."""
    return await svc.inspector.flow(name, version)


@router.get("/workers", tags=["workers"])
async def list_workers(svc: Svc) -> list[WorkerView]:
    return await svc.inspector.workers()


@router.get("/limits", tags=["limits"])
async def list_limits(
    svc: Svc, limiter: Annotated[str | None, Query(pattern=NAME, description="Only this limiter")] = None
) -> LimitsOverview:
    """Rate and concurrency limiters: each key's use, its waiting jobs and when the next is admitted."""
    return await svc.inspector.limits(limiter)


@router.get("/queues", tags=["queues"])
async def list_queues(svc: Svc) -> QueuesOverview:
    """Every queue's depth, summed over the namespace's partitions."""
    return await svc.inspector.queues()


class Partitions(BaseModel):
    namespace: str
    partitions: int  # 1: the namespace is its control slot alone, as every namespace made without them
    tags: list[str]  # each partition's hash tag (the slot a Redis Cluster places it by)


@router.get("/partitions", tags=["queues"])
async def partitions(svc: Svc) -> Partitions:
    """How many partitions the namespace is made of (`tqc partitions --create N` makes them)."""
    parts = await svc.inspector.parts()
    return Partitions(
        namespace=svc.inspector.keys.namespace,
        partitions=max(1, len(parts) - 1),
        tags=[p.keys.prefix for p in parts[1:]] or [svc.inspector.keys.prefix],
    )


@router.get("/queues/{name}", tags=["queues"])
async def get_queue(svc: Svc, name: Annotated[str, Path(pattern=NAME)]) -> QueueStats:
    if name not in await svc.inspector.queue_names():
        raise QueueNotFound(f"no queue `{name}`")
    return await svc.inspector.queue(name)
