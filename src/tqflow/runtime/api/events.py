"""The REST route of event triggers: `POST /api/events/{name}` starts a run of each flow listening for the
event (runtime/events.py); the body is the event's data."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, Field

from tqflow.runtime.api.routes import Svc

router = APIRouter(prefix="/api")
EventName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,128}$", description="An event's name")]


class EventStarted(BaseModel):
    flow: str
    trigger: str
    run: str = Field(description="The run started; for a duplicate, the run its key's first event started")
    status: str = Field(description="started | duplicate (same key within the window) | paused")


@router.post("/events/{name}", tags=["flows"])
async def emit_event(
    svc: Svc, name: EventName, data: Annotated[Any, Body(description="The event's data (JSON)")] = None
) -> list[EventStarted]:
    """Send an event: each deployed flow with `schedule event "NAME"` starts a run (a paused one none)."""
    runs = await svc.client.emit(name, data)
    return [EventStarted(flow=r.flow, trigger=r.trigger, run=r.run_id, status=r.status) for r in runs]
