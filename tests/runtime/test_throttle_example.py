"""examples/throttle end to end: three customers' syncs against the fake outside API (its own token bucket
per customer, 2 report calls at once), with in-process workers. The API's counts are the ledger: with the
flow's limiters in place it serves every call and (all but) never has to refuse one."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tqflow.compiler import compile_file
from tqflow.runtime.client import Client
from tqflow.runtime.registry import load_tasks

from helpers import WorkerFactory

EXAMPLE = Path(__file__).parents[2] / "examples" / "throttle"


@pytest.fixture
def fake_api() -> Iterator[str]:
    sys.path.insert(0, str(EXAMPLE))
    import fake_api as api

    api.LIMITS = api.Limits()  # counts of this test only
    server = ThreadingHTTPServer(("127.0.0.1", 0), api.Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    sys.path.remove(str(EXAMPLE))


async def test_three_customers_sync_within_the_apis_limits(
    client: Client, start_worker: WorkerFactory, fake_api: str
) -> None:
    result = compile_file(EXAMPLE / "throttle.tqflow")
    assert result.plan is not None, [d.message for d in result.diagnostics]
    [flow] = result.plan.flows.values()
    await client.deploy(result.plan)
    await start_worker(load_tasks(flow.modules, [EXAMPLE]), queues=[flow.queue], concurrency=30)
    pages = {"acme": 40, "globex": 25, "initech": 5}
    runs = {
        customer: await client.start_run(
            flow.name, {"customer": customer, "pages": str(n), "base_url": fake_api}
        )
        for customer, n in pages.items()
    }
    infos = {c: await client.wait(r, timeout=60) for c, r in runs.items()}
    assert {c: i.state for c, i in infos.items()} == dict.fromkeys(pages, "succeeded")
    stats = json.loads(await asyncio.to_thread(lambda: urllib.request.urlopen(f"{fake_api}/stats").read()))
    # every customer: one index call, one call a page, one report: all served
    assert stats["served"] == {c: n + 2 for c, n in pages.items()}
    # 40 pages at 10/s after a burst of 20 take about 2 s: without the limiters most would be refused
    assert sum(stats["refused"].values()) <= 3, stats
    assert infos["acme"].outputs["invoices"] >= 0
