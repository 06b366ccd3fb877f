"""The REST routes of a deployed flow's life: resume an ended run, pause and unpause its schedules,
undeploy it, backfill past ticks (runtime/lifecycle.py, runtime/resume.py). `POST /api/runs` starts runs."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from tqflow.runtime.api.routes import FlowName, RunId, Svc

router = APIRouter(prefix="/api")
API_MAX_BACKFILL = 1000  # ticks one request may start (the CLI pages larger windows by itself)


class FlowLife(BaseModel):
    flow: str
    version: int
    paused: bool


class Undeployed(BaseModel):
    flow: str
    version: int = Field(description="The version that was current")
    running: list[str] = Field(description="Runs in progress, finishing on their version")
    cancelled: list[str] = Field(description="Runs cancelled (cancel_runs=true)")


class BackfillRequest(BaseModel):
    start: dt.datetime = Field(alias="from", description="First instant, included (ISO 8601 with an offset)")
    end: dt.datetime = Field(alias="to", description="Last instant, included")
    schedule: str | None = Field(default=None, max_length=64, description="A schedule's position or name")
    rate: float = Field(default=50.0, gt=0, le=1000, description="Runs started a second, at most")


class BackfilledTick(BaseModel):
    tick: dt.datetime
    run: str
    status: str = Field(description="started | exists (backfilled before) | fired (by the schedule)")


class ResumeRequest(BaseModel):
    from_job: str | None = Field(
        default=None, alias="from", max_length=128, description="Re-run this job and everything downstream"
    )


class ResumedRun(BaseModel):
    id: str
    rerun: int = Field(description="Jobs that run again")


def _ms(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


@router.post("/runs/{run_id}/resume", tags=["runs"])
async def resume_run(svc: Svc, run_id: RunId, body: ResumeRequest | None = None) -> ResumedRun:
    """Re-run an ended run's jobs that did not succeed, keeping the others' outputs (409 if it is running)."""
    from fastapi import HTTPException

    from tqflow.runtime.resume import ResumeError

    try:
        resumed = await svc.client.resume(run_id, body.from_job if body else None)
    except ResumeError as err:
        if "has not ended" in str(err):
            raise HTTPException(status_code=409, detail=str(err)) from err
        raise
    return ResumedRun(id=run_id, rerun=resumed.rerun)


@router.post("/flows/{name}/pause", tags=["flows"])
async def pause_flow(svc: Svc, name: FlowName) -> FlowLife:
    """Stop the flow's schedules (runs can still be started)."""
    return FlowLife(flow=name, version=await svc.client.pause(name), paused=True)


@router.post("/flows/{name}/unpause", tags=["flows"])
async def unpause_flow(svc: Svc, name: FlowName) -> FlowLife:
    """Restart the flow's schedules; ticks missed while paused follow the catch-up policy."""
    return FlowLife(flow=name, version=await svc.client.unpause(name), paused=False)


@router.delete("/flows/{name}", tags=["flows"])
async def undeploy_flow(
    svc: Svc, name: FlowName, cancel_runs: Annotated[bool, Query(description="Cancel its runs")] = False
) -> Undeployed:
    """Remove the flow; runs in progress finish on their version unless cancel_runs."""
    gone = await svc.client.undeploy(name, cancel_runs=cancel_runs)
    return Undeployed(flow=gone.flow, version=gone.version, running=gone.running, cancelled=gone.cancelled)


@router.post("/flows/{name}/backfill", tags=["flows"])
async def backfill_flow(svc: Svc, name: FlowName, body: BackfillRequest) -> list[BackfilledTick]:
    """Start the runs the schedule's ticks in the window would have started; each tick at most once."""
    from tqflow.runtime.lifecycle import BackfillError, pick_trigger, window_ticks

    _, flow = await svc.client.flow(name)
    ticks = window_ticks(pick_trigger(flow, body.schedule), _ms(body.start), _ms(body.end))
    if len(ticks) > API_MAX_BACKFILL:
        raise BackfillError(f"the window holds {len(ticks)} ticks; the API starts {API_MAX_BACKFILL} at most")
    items = svc.client.backfill(name, _ms(body.start), _ms(body.end), schedule=body.schedule, rate=body.rate)
    return [
        BackfilledTick(tick=dt.datetime.fromtimestamp(i.tick / 1000, dt.UTC), run=i.run_id, status=i.status)
        async for i in items
    ]
