"""Failover of a Sentinel set under load (failover_load.py): the master is SIGKILLed while jobs are
enqueued and run, its replica promoted by the sentinels. Apart from test_failover.py (the cluster) so the two
run in different xdist processes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from failover_load import failover_under_load

from tqflow.runtime.servers import LocalSentinel

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("wait_replicas", [False, True], ids=["async-replication", "wait-replicas"])
async def test_sentinel_failover_under_load(tmp_path: Path, wait_replicas: bool) -> None:
    with LocalSentinel(replicas=1, sentinels=3) as sentinel:
        await failover_under_load(
            sentinel.url,
            f"so-{uuid.uuid4().hex[:8]}",
            tmp_path,
            sentinel.master,
            f"sentinel failover{' (wait_replicas=1)' if wait_replicas else ''}",
            wait_replicas,
        )
