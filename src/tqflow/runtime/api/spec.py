"""The specification's REST routes at their own paths and methods, beside the `/api` ones (the same
handlers): `POST /jobs`, `GET|DELETE /jobs/{id}`, `PUT /jobs/{id}/priority`, `GET /stats`, `GET /workers`,
`GET /dlq`, `GET /health`. Also `/api/stats` and `/api/tasks` (what the workers registered)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from tqflow.runtime import catalog
from tqflow.runtime.api import operations, routes
from tqflow.runtime.api.routes import Svc
from tqflow.runtime.views import QueuesOverview

router = APIRouter()
api = APIRouter(prefix="/api")


class Stats(BaseModel):
    queues: QueuesOverview  # depth by queue and priority, delayed and dead-lettered jobs
    workers: dict[str, int]  # workers by state: leader, alive, dead, unregistered
    runs: dict[str, int]  # the latest 1,000 runs by state
    tasks: int  # tasks the workers registered


class TaskInfo(BaseModel):
    name: str
    queue: str | None = None
    priority: str | None = None
    retry: dict[str, Any] | None = None
    timeout_ms: int | None = None
    deadline_ms: int | None = None
    dead_letter: str | None = None
    version: int = 1
    codec: str | None = None
    compression: str | None = None
    params: list[dict[str, Any]] = []
    worker: str = ""
    published: int | None = None


async def stats(svc: Svc) -> Stats:
    """Queue depth, delayed and dead-lettered jobs, workers by state, recent runs by state."""
    inspector = svc.inspector
    workers = Counter(w.state for w in await inspector.workers())
    runs = Counter(r.state for r in await inspector.recent_runs(1000))
    tasks = await svc.redis.hlen(catalog.catalog_key(inspector.keys))
    return Stats(queues=await inspector.queues(), workers=dict(workers), runs=dict(runs), tasks=int(tasks))


async def tasks(svc: Svc) -> list[TaskInfo]:
    """The tasks the workers registered, with their own policies and parameters."""
    found = await catalog.read_all(svc.redis, svc.inspector.keys)
    return [TaskInfo.model_validate(found[name].raw) for name in sorted(found)]


api.add_api_route("/stats", stats, methods=["GET"], tags=["stats"])
api.add_api_route("/tasks", tasks, methods=["GET"], tags=["tasks"])

SPEC = "The specification's path for the same handler as `/api%s`."
router.add_api_route(
    "/jobs", operations.submit_job, methods=["POST"], status_code=201, tags=["jobs"], summary="Submit a job"
)
router.add_api_route("/jobs/{job_id}", routes.get_job, methods=["GET"], tags=["jobs"], summary="A job")
router.add_api_route(
    "/jobs/{job_id}",
    operations.cancel_job,
    methods=["DELETE"],
    tags=["jobs"],
    summary="Cancel a job",
    description=SPEC % "/jobs/{id}/cancel (POST)",
)
router.add_api_route(
    "/jobs/{job_id}/priority",
    operations.reprioritize,
    methods=["PUT"],
    tags=["jobs"],
    summary="Change a job's priority",
    description=SPEC % "/jobs/{id}/priority (POST)",
)
router.add_api_route("/stats", stats, methods=["GET"], tags=["stats"], summary="Statistics")
router.add_api_route("/workers", routes.list_workers, methods=["GET"], tags=["workers"], summary="Workers")
router.add_api_route(
    "/dlq", operations.list_dlq, methods=["GET"], tags=["dlq"], summary="A dead-letter queue"
)
router.add_api_route("/health", routes.health, methods=["GET"], tags=["health"], summary="Health")
