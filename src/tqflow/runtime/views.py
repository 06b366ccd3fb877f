"""What the Inspector returns: read-only views of runs, jobs, flows, queues, workers and the DLQ.

Pydantic models, so the REST API serves them with their schema and `tqc … --json` prints them as is.
Times are Unix milliseconds.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    offset: int
    limit: int
    next_offset: int | None = None  # None when there is nothing more
    total: int | None = None  # None when counting would mean reading everything


class RunSummary(BaseModel):
    id: str
    flow: str
    version: int
    state: str
    created: int
    finished: int | None = None
    open: int = 0  # jobs not terminal yet
    failed: int = 0  # jobs dead-lettered
    parent_job: str | None = None  # a sub-flow's child run: the job (RUN.JOB) that started it
    parent_run: str | None = None


class AttemptView(BaseModel):
    attempt: int
    worker: str = ""
    started: int = 0
    duration_ms: int = 0
    outcome: str = ""
    waited_ms: int = 0
    error_type: str | None = None
    error_message: str | None = None


class JobView(BaseModel):
    id: str
    name: str = ""
    run: str = ""
    flow: str = ""
    task: str = ""
    queue: str = ""
    priority: str = ""
    state: str = "unknown"
    attempt: int = 0
    created: int | None = None
    enqueued: int | None = None
    started: int | None = None
    finished: int | None = None
    due: int | None = None
    worker: str | None = None
    reason: str | None = None
    error: dict[str, Any] | None = None  # the last failure: type, message, traceback
    result: Any = None
    args: Any = None  # the job's arguments (a pickled payload shows as unreadable, never unpickled)
    codec: str | None = None  # how its arguments are stored: json, msgpack or pickle
    compression: str | None = None  # none, zlib or zstd
    options: dict[str, Any] = Field(default_factory=dict)  # retry, timeout_ms, deadline_ms, dead_letter
    duration_ms: int | None = None  # from its (last) start to its end
    children: int | None = None  # a fan-out job: how many child jobs it made (ids JOB_ID.0, JOB_ID.1, …)
    children_left: int | None = None  # … and how many have not ended
    child_run: str | None = None  # a sub-flow job: its (latest) child run
    waits_for: list[str] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)  # a standalone job's dependencies (job ids)
    allow_failure: bool = False  # … it runs once they ended whatever their state (else: all must succeed)
    attempts: list[AttemptView] = Field(default_factory=list)


class Edge(BaseModel):
    source: str
    target: str
    kind: str  # data | after


class RunDetail(RunSummary):
    params: Any = None
    jobs: list[JobView]
    edges: list[Edge]
    counts: dict[str, int]  # jobs by state
    outputs: dict[str, Any] = {}  # the flow's outputs, once the run succeeded
    output_errors: dict[str, str] = {}  # outputs that could not be evaluated


class FlowVersion(BaseModel):
    version: int
    plan_id: str
    current: bool


class FlowSummary(BaseModel):
    name: str
    current: int | None
    latest: int
    queue: str = ""
    jobs: int = 0
    triggers: int = 0


class FlowDetail(FlowSummary):
    versions: list[FlowVersion]
    plan: dict[str, Any]  # the chosen version's plan
    version: int


class QueueLevel(BaseModel):
    queue: str
    priority: str
    level: int
    waiting: int  # entries no worker has read yet
    running: int  # entries read and not yet acknowledged (pending)
    oldest_age_ms: int | None  # age of the oldest waiting entry


class QueueStats(BaseModel):
    queue: str
    waiting: int
    running: int
    oldest_age_ms: int | None
    levels: list[QueueLevel]


class QueuesOverview(BaseModel):
    queues: list[QueueStats]
    delayed: int  # scheduled and retrying jobs, all queues
    dead: int  # jobs in the dead-letter queues (the default and the named ones)


class WorkerView(BaseModel):
    name: str
    queues: list[str] = Field(default_factory=list)
    running: int = 0  # jobs it holds
    idle_ms: int | None = None  # since its last heartbeat (registry) or its last read (consumer group)
    state: str = "unknown"  # leader | alive | dead (record expired) | unregistered (seen only in the streams)
    source: str = "consumer-group"  # where this came from: "registry" or the streams' consumer groups
    info: dict[str, Any] = Field(default_factory=dict)


class DeadJob(BaseModel):
    dead_at: int
    job: JobView
