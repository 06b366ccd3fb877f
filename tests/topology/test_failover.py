"""Failover of a Redis Cluster under load (failover_load.py): the master that holds the namespace is
SIGKILLed while jobs are enqueued and run, its replica promoted by the cluster."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from failover_load import failover_under_load
from redis.crc import key_slot

from tqflow.runtime.servers import LocalCluster

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("wait_replicas", [False, True], ids=["async-replication", "wait-replicas"])
async def test_cluster_failover_under_load(tmp_path: Path, wait_replicas: bool) -> None:
    namespace = f"fo-{uuid.uuid4().hex[:8]}"
    slot = key_slot(f"{{{namespace}}}".encode())
    with LocalCluster(masters=3, replicas=1) as cluster:
        url = f"redis+cluster://{cluster.not_owner(slot).address}"
        label = f"cluster failover{' (wait_replicas=1)' if wait_replicas else ''}"
        await failover_under_load(url, namespace, tmp_path, lambda: cluster.owner(slot), label, wait_replicas)
