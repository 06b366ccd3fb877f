"""The cluster's part of the key layout: triggers in the control slot (`Keys.control`); the registry, the
leader and the leases of running jobs in the partition (`Keys.prefix`), since the partition's scripts check
a worker's record beside the jobs (a lean job's lease, recovery). With one partition both are `{ns}`; in a
namespace of several, a worker registers in each partition it serves and each partition has its leader
for its own recovery and pruning (runtime/partitions.py). The Lua scripts under lua/cluster_*.lua receive
these keys as KEYS (store/calls.py), never build them.
"""

from __future__ import annotations

from tqflow.runtime.store.keys import Keys


class ClusterKeys:
    def __init__(self, keys: Keys) -> None:
        self.base = keys
        prefix = keys.prefix
        self.workers = f"{prefix}:workers"  # zset: worker name -> last heartbeat (ms)
        self.leases = keys.leases  # zset: job id -> lease deadline (ms) of its running attempt
        self.leader = f"{prefix}:leader"  # string "worker:epoch", expires with the lease
        self.leader_epoch = f"{prefix}:leader:epoch"  # counter: one more per new leader
        # hash: a tick's run id (pK:LOCAL) -> its submission, until it is made in its data partition (the
        # hand-off of cluster/outbox.py)
        self.outbox = f"{keys.control}:outbox"

    def worker(self, name: str) -> str:
        return f"{self.base.prefix}:worker:{name}"

    def trigger(self, flow: str, trigger: str) -> str:
        return f"{self.base.control}:trigger:{flow}:{trigger}"

    def tick(self, flow: str, trigger: str, tick_ms: int) -> str:
        return f"{self.base.control}:tick:{flow}:{trigger}:{tick_ms}"
