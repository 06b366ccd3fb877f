"""The cluster's part of the key layout: workers, leadership and triggers in the control slot
(`Keys.control`), the leases of running jobs in the partition (`Keys.prefix`). The Lua scripts under
lua/cluster_*.lua receive these keys as KEYS (store/calls.py), never build them.
"""

from __future__ import annotations

from tqflow.runtime.store.keys import Keys


class ClusterKeys:
    def __init__(self, keys: Keys) -> None:
        self.base = keys
        prefix = keys.control
        self.workers = f"{prefix}:workers"  # zset: worker name -> last heartbeat (ms)
        self.leases = keys.leases  # zset: job id -> lease deadline (ms) of its running attempt
        self.leader = f"{prefix}:leader"  # string "worker:epoch", expires with the lease
        self.leader_epoch = f"{prefix}:leader:epoch"  # counter: one more per new leader

    def worker(self, name: str) -> str:
        return f"{self.base.control}:worker:{name}"

    def trigger(self, flow: str, trigger: str) -> str:
        return f"{self.base.control}:trigger:{flow}:{trigger}"

    def tick(self, flow: str, trigger: str, tick_ms: int) -> str:
        return f"{self.base.control}:tick:{flow}:{trigger}:{tick_ms}"
