"""The REST routes of signals: send a run's signal job its payload, list the signal jobs awaiting one
(runtime/signals.py). A payload that does not fit the job's type is 422; a job that takes none now, 409."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path
from pydantic import BaseModel, Field

from tqflow.runtime.api.routes import Limit, RunId, Svc
from tqflow.runtime.signals import SignalRefused, WaitingSignal

router = APIRouter(prefix="/api")
SignalName = Annotated[
    str, Path(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", description="A signal job's name")
]


class SignalSent(BaseModel):
    run: str
    name: str
    status: str = Field(description="delivered (the job was awaiting it) | kept (delivered when reached)")


class WaitingSignalView(BaseModel):
    run: str
    flow: str
    name: str
    type: str = Field(description="The payload's type, as the flow declares it")
    since_ms: int
    timeout_at_ms: int | None = Field(description="When the job fails if no payload came (None: never)")
    schema_: dict[str, Any] = Field(alias="schema", description="What a payload must look like")

    model_config = {"populate_by_name": True}


def _view(item: WaitingSignal) -> WaitingSignalView:
    return WaitingSignalView(
        run=item.run_id,
        flow=item.flow,
        name=item.name,
        type=item.type,
        since_ms=item.since_ms,
        timeout_at_ms=item.timeout_at_ms,
        schema=item.schema,
    )


@router.post("/runs/{run_id}/signals/{name}", tags=["runs"])
async def send_signal(
    svc: Svc,
    run_id: RunId,
    name: SignalName,
    payload: Annotated[Any, Body(description="The payload: JSON of the signal job's type")] = None,
) -> SignalSent:
    """Send the run's signal job `name` its payload (the request's JSON body), which becomes its result."""
    try:
        sent = await svc.client.signal(run_id, name, payload)
    except SignalRefused as err:
        raise HTTPException(status_code=409, detail=str(err)) from err
    return SignalSent(run=sent.run_id, name=sent.name, status=sent.status)


@router.get("/runs/{run_id}/signals", tags=["runs"], response_model_by_alias=True)
async def run_signals(svc: Svc, run_id: RunId) -> list[WaitingSignalView]:
    """The run's signal jobs that await a payload now."""
    return [_view(i) for i in await svc.client.waiting_signals(run_id)]


@router.get("/signals", tags=["runs"], response_model_by_alias=True)
async def all_signals(svc: Svc, limit: Limit = 100) -> list[WaitingSignalView]:
    """Every signal job that awaits a payload now, oldest first: approvals waiting for someone."""
    return [_view(i) for i in await svc.client.waiting_signals(None, limit)]
