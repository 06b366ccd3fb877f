"""The REST routes of schedules (runtime/schedules.py): list, show, create or replace, remove."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from tqflow.plan import PRIORITIES
from tqflow.runtime.api.routes import NAME, Svc
from tqflow.runtime.schedules import Schedule, ScheduleNotFound

router = APIRouter(prefix="/api")
PRIORITY = "^(" + "|".join(PRIORITIES) + ")$"


class ScheduleView(BaseModel):
    name: str
    flow: str
    task: str
    kind: str
    cron: str | None = None
    timezone: str = "UTC"
    every_ms: int | None = None
    at: str | None = None
    args: dict[str, Any] = {}
    queue: str
    priority: str
    catchup: str
    overlap: str
    on_dst_gap: str
    on_dst_repeat: str
    version: int
    paused: bool = False
    next_ms: int | None = None
    last_fired_ms: int | None = None
    last_run: str | None = None
    fired: int = 0
    skipped: int = 0


class NewSchedule(BaseModel):
    task: str = Field(pattern=NAME, description="A task name (`module.function`)")
    name: str | None = Field(default=None, pattern=NAME, description="Default: the task's name")
    cron: str | None = Field(default=None, max_length=200, description="5 fields, or 6 with seconds first")
    every_ms: int | None = Field(default=None, gt=0, le=366 * 86_400_000)
    at: str | None = Field(default=None, max_length=64, description="Once, at this ISO 8601 time")
    tz: str = Field(default="UTC", max_length=64, description="An IANA time zone")
    args: dict[str, Any] = Field(default_factory=dict, max_length=200)
    queue: str | None = Field(default=None, pattern=NAME)
    priority: str | None = Field(default=None, pattern=PRIORITY)
    catchup: str = Field(default="none", max_length=64, description="none, all, last(N), all(within=1h)")
    overlap: Literal["skip", "queue", "allow"] = "skip"
    on_dst_gap: Literal["shift", "skip"] = "shift"
    on_dst_repeat: Literal["first", "both"] = "first"


def _view(found: Schedule) -> ScheduleView:
    return ScheduleView.model_validate(dataclasses.asdict(found))


@router.get("/schedules", tags=["schedules"])
async def list_schedules(svc: Svc) -> list[ScheduleView]:
    """Every schedule (`client.schedule(...)`, `tqc schedules add`), with its next tick."""
    return [_view(s) for s in await svc.client.schedules()]


@router.get("/schedules/{name}", tags=["schedules"])
async def get_schedule(svc: Svc, name: str) -> ScheduleView:
    try:
        return _view(await svc.client.schedule_info(name))
    except (ScheduleNotFound, ValueError) as err:
        raise HTTPException(404, str(err)) from err


@router.post("/schedules", tags=["schedules"], status_code=201)
async def put_schedule(svc: Svc, body: NewSchedule) -> ScheduleView:
    """Create a schedule, or replace the one of that name (its ticks go on from where they were); 422
    naming what is wrong (not exactly one of cron, every_ms, at; an unknown zone; a bad cron or argument)."""
    try:
        made = await svc.client.schedule(
            body.task,
            cron=body.cron,
            every=body.every_ms / 1000 if body.every_ms else None,
            at=body.at,
            tz=body.tz,
            name=body.name,
            args=body.args,
            queue=body.queue,
            priority=body.priority,
            catchup=body.catchup,
            overlap=body.overlap,
            on_dst_gap=body.on_dst_gap,
            on_dst_repeat=body.on_dst_repeat,
        )
    except (ValueError, TypeError) as err:
        raise HTTPException(422, [{"type": "value_error", "loc": ["body"], "msg": str(err)}]) from err
    return _view(made)


@router.delete("/schedules/{name}", tags=["schedules"])
async def delete_schedule(svc: Svc, name: str) -> ScheduleView:
    """Remove a schedule; runs it started go on. Answers the schedule as it was."""
    try:
        return _view(await svc.client.unschedule(name))
    except (ScheduleNotFound, ValueError) as err:
        raise HTTPException(404, str(err)) from err
