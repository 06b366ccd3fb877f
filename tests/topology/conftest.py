"""A 3-master Redis Cluster shared by this folder's tests (the failover tests start their own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tqflow.runtime.servers import LocalCluster


@pytest.fixture(scope="session")
def cluster3() -> Iterator[LocalCluster]:
    with LocalCluster(masters=3) as cluster:
        yield cluster
