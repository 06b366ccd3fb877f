"""F21: a submit whose reply is lost. The client's connection dies after its request reached Redis (a proxy
forwards the script call, drops Redis's answer and closes the connection): the client cannot tell whether
it landed, and redis-py sends it again on a new connection. The jobs (or the run) must exist once, and the
call must answer as the first send did: every submit carries a nonce, and the script answers a nonce it
has seen with the reply it gave then.

Covered: Client.enqueue (a lean job and one with a record), enqueue_many (atomic, best-effort, and both
past one script call), SyncClient.enqueue and enqueue_many, Client.start_run and `tqc start`, and
POST /api/jobs. No worker runs: the jobs stay where the submit put them, to be counted.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from harness import fault_plan
from proxy import Proxy
from redis.asyncio import Redis

from tqflow.runtime.api.app import create_app
from tqflow.runtime.api.settings import ApiSettings
from tqflow.runtime.catalog import publish
from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.embedded import EmbeddedRedis
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import function_name, script_sha
from tqflow.runtime.sync import SyncClient
from tqflow.runtime.task import task

pytestmark = pytest.mark.faults
NS = "f21"


def submit_call(script: str) -> tuple[bytes, ...]:
    """What a request that calls `script` carries, framed as RESP so that loading the function library
    (whose text names every function and mentions EVALSHA) never matches: FCALL of its function, or
    EVALSHA of its sha where the server has no functions."""
    return tuple(
        f"${len(verb)}\r\n{verb}\r\n${len(name)}\r\n{name}\r\n".encode()
        for verb, name in (("FCALL", function_name(script)), ("EVALSHA", script_sha(script)))
    )


ENQUEUE = submit_call("enqueue")
SUBMIT_RUN = submit_call("submit_run")


@task
async def noop(n: int = 0) -> int:
    return n


@dataclass
class Rig:
    proxy: Proxy
    direct: Redis  # the test's own view of Redis, around the proxy
    client: Client  # through the proxy
    url: str  # the proxy's URL
    keys: Keys

    async def queued(self) -> int:
        """Jobs the submits created: stream entries (lean jobs) and delayed records."""
        streams = sum([await self.direct.xlen(s) for s in self.keys.streams("default")])
        return int(streams) + int(await self.direct.zcard(self.keys.delayed))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    port = free_port()
    server = EmbeddedRedis(tmp_path / "redis", extra_args=("--port", str(port), "--bind", "127.0.0.1"))
    server.start()
    proxy = Proxy(port)
    await proxy.start()
    url = f"redis://127.0.0.1:{proxy.port}"
    direct = connect(f"redis://127.0.0.1:{port}")
    client = Client(connect(url), NS)
    try:
        yield Rig(proxy, direct, client, url, Keys(NS))
    finally:
        await client.close()
        await direct.aclose()
        await proxy.close()
        server.stop()


def cut_once(rig: Rig, script: tuple[bytes, ...] = ENQUEUE) -> None:
    rig.proxy.cut_replies(script, 1)


def check_cut(rig: Rig) -> None:
    assert rig.proxy.cut == 1, "the proxy did not cut a submit: the test tested nothing"


async def test_enqueue_one_lean_job(rig: Rig) -> None:
    cut_once(rig)
    job = await rig.client.enqueue(noop, n=1)
    check_cut(rig)
    assert await rig.queued() == 1
    assert (await rig.client.job(str(job))).state == "queued"  # the id the first send made


async def test_enqueue_one_job_with_a_record(rig: Rig) -> None:
    cut_once(rig)
    job = await rig.client.enqueue(noop, n=1, delay=60)
    check_cut(rig)
    assert await rig.queued() == 1
    assert (await rig.client.job(str(job))).state == "scheduled"


@pytest.mark.parametrize("count", [10, 3000])  # one script call; staged (3000 fields pass one call)
async def test_enqueue_many_atomic(rig: Rig, count: int) -> None:
    cut_once(rig)
    ids = await rig.client.enqueue_many([noop.call(n=i) for i in range(count)])
    check_cut(rig)
    assert len(set(ids)) == count
    assert await rig.queued() == count


@pytest.mark.parametrize("count", [10, 3000])  # one script call; a pipeline of pages
async def test_enqueue_many_best_effort(rig: Rig, count: int) -> None:
    cut_once(rig)
    ids = await rig.client.enqueue_many([noop.call(n=i) for i in range(count)], atomic=False)
    check_cut(rig)
    assert [i.status for i in ids] == ["ok"] * count
    assert await rig.queued() == count


async def test_sync_client(rig: Rig) -> None:
    sync = SyncClient(rig.url, NS)
    try:
        cut_once(rig)  # the proxy runs on this loop: the sync calls go to a thread
        job = await asyncio.to_thread(sync.enqueue, noop, n=1)
        check_cut(rig)
        rig.proxy.cut = 0
        cut_once(rig)
        many = await asyncio.to_thread(sync.enqueue_many, [noop.call(n=i) for i in range(10)])
        check_cut(rig)
    finally:
        sync.close()
    assert await rig.queued() == 11
    assert str(job) not in {str(i) for i in many}


async def test_start_run(rig: Rig) -> None:
    await rig.client.deploy(fault_plan())
    cut_once(rig, SUBMIT_RUN)
    run_id = await rig.client.start_run("fault", {"key": "a"})  # before: "run … already exists"
    check_cut(rig)
    assert await rig.direct.zcard(rig.keys.runs) == 1
    assert (await rig.client.run_info(run_id)).state == "running"


async def test_tqc_start(rig: Rig) -> None:
    await rig.client.deploy(fault_plan())
    cut_once(rig, SUBMIT_RUN)
    tqc = Path(sys.executable).parent / "tqc"
    proc = await asyncio.create_subprocess_exec(
        str(tqc),
        "start",
        "fault",
        "--param",
        "key=a",
        "--redis",
        rig.url,
        "--namespace",
        NS,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    check_cut(rig)
    assert proc.returncode == 0, err.decode()
    assert await rig.direct.zcard(rig.keys.runs) == 1
    assert [str(r) for r in await rig.direct.zrange(rig.keys.runs, 0, -1)] == [out.decode().strip()]


async def test_post_api_jobs(rig: Rig) -> None:
    await publish(rig.direct, rig.keys, {noop.name: noop})  # as a worker would
    app = create_app(ApiSettings(rig.url, NS))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
    try:
        cut_once(rig)
        reply = await http.post("/api/jobs", json={"task": noop.name, "kwargs": {"n": 1}})
        check_cut(rig)
    finally:
        await http.aclose()
        await app.state.services.close()
    assert reply.status_code == 201, reply.text
    assert await rig.queued() == 1
