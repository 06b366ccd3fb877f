"""A worker's knobs: its queues, slots, lease, fetch weights, aging, retention and payload limits."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field

from tqflow.runtime.cluster.settings import ClusterSettings
from tqflow.runtime.store.payloads import PayloadSettings

DEFAULT_WEIGHTS = {"high": 8, "normal": 4, "low": 2, "batch": 1}


@dataclass
class WorkerSettings:
    queues: list[str] = field(default_factory=lambda: ["default"])
    concurrency: int = 10
    lease_ms: int = 30_000
    block_ms: int = 500
    max_promote_sleep: float = 1.0
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    # the levels share the free slots by these weights; critical, when not named, has 32 (priorities.py)
    weights: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    aging_ms: int = 60_000  # a normal/low/batch job that waited this long moves to `aging_to` (0: never)
    aging_to: str = "critical"
    result_ttl_ms: int = 86_400_000  # how long a finished standalone job's record stays (dead ones stay)
    keep_history_ms: int | None = None  # attempt histories (runtime/attempts.py); None: as result_ttl_ms
    keep_runs_ms: int = (
        7 * 86_400_000
    )  # finished runs and their jobs (cluster/retention.py; the leader prunes)
    payloads: PayloadSettings = field(default_factory=PayloadSettings)
    process_pool: int = 0  # processes for executor="process" tasks (0: one, started on first use)
    fetch_batch: int = 100  # most entries read in one fetch
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
