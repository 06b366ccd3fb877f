"""A private Sentinel set is ready only once its replica holds the master's data: a replica that is
connected but still in its first sync has none of it, and a failover then promotes an empty server (the
async-replication failover case lost every job acknowledged before the kill that way, about one run in
three in CI)."""

from __future__ import annotations

import time

from tqflow.runtime.servers import LocalSentinel


def test_a_started_sentinel_sets_replica_is_in_sync() -> None:
    with LocalSentinel(replicas=1, sentinels=3) as sentinel:
        master, replica = sentinel.data
        with replica.client() as client:
            assert client.info("replication")["master_link_status"] == "up"
        with master.client() as client:
            client.set("ready-check", "1")
        deadline = time.monotonic() + 2
        with replica.client() as client:
            while client.get("ready-check") not in ("1", b"1"):
                assert time.monotonic() < deadline, "a write on the master did not reach the replica"
                time.sleep(0.01)
