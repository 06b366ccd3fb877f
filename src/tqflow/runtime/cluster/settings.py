"""How a worker takes part in the cluster: heartbeats, recovery, stealing, leadership, shutdown."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from tqflow.errors import SettingError


@dataclass
class ClusterSettings:
    node: str = field(default_factory=socket.gethostname)  # the machine, shown by `tqc workers`
    heartbeat_ms: int = 1_000
    dead_after_ms: int = 5_000  # no heartbeat for this long: the worker is dead, its jobs run again
    max_deliveries: int = 5  # attempts lost with their worker before the job is dead-lettered
    steal_after_ms: int = 5_000  # an entry read but not started for this long may be taken (0: never)
    leader_lease_ms: int = 5_000
    grace_s: float = 10.0  # SIGTERM: in-flight jobs get this long to finish, then are handed back
    scheduler: bool = True  # the leader fires the deployed flows' triggers
    # A tick found later than this is "missed" and follows its catch-up policy; longer than a leader
    # failover (a lease and a bit), so a tick due while the leader died still fires.
    tick_grace_ms: int = 15_000

    def __post_init__(self) -> None:
        if self.heartbeat_ms <= 0 or self.dead_after_ms <= self.heartbeat_ms:
            raise SettingError(
                f"dead_after_ms ({self.dead_after_ms}) must exceed heartbeat_ms ({self.heartbeat_ms}) > 0"
            )
        if self.max_deliveries < 1:
            raise SettingError(f"max_deliveries must be at least 1, not {self.max_deliveries}")
