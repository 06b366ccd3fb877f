"""`?wait_replicas=N` on a Redis URL: a submit returns once N replicas acknowledged it (WAIT on the
script's own connection), so a job the caller was told about is on the replica; fewer in time raise
NotReplicated with the ids (the jobs are queued on the master). Every way in: Client, SyncClient, tqc,
POST /jobs, run starts. Against a private master and replica (this file starts them)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from tqflow.runtime import catalog
from tqflow.runtime.api.app import create_app
from tqflow.runtime.api.settings import ApiSettings
from tqflow.runtime.client import Client
from tqflow.runtime.connection import RedisUrlError, parse_url
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.replication import NotReplicated, Replication
from tqflow.runtime.servers import LocalServer, ServerProcess, free_ports
from tqflow.runtime.sync import SyncClient

from cli_runner import tqc_on
from helpers import FLOWS, plan_of

TASKS = load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above


class Pair:
    def __init__(self, master: LocalServer, replica: ServerProcess) -> None:
        self.master, self.replica = master, replica
        self.url = master.url
        self.replica_client = redis.Redis(port=replica.port, decode_responses=True)

    def on_replica(self, key: str) -> bool:
        return bool(self.replica_client.exists(key))

    def paused(self) -> PausedReplica:
        return PausedReplica(self.replica)


class PausedReplica:
    """The replica stopped (SIGSTOP): it acknowledges nothing until it goes on."""

    def __init__(self, replica: ServerProcess) -> None:
        self.replica = replica

    def __enter__(self) -> None:
        os.kill(self.replica.pid, signal.SIGSTOP)

    def __exit__(self, *_: object) -> None:
        os.kill(self.replica.pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    with LocalServer() as master:
        port = free_ports(1)[0]
        replica = ServerProcess(
            master.binary,
            port,
            master.folder / "replica",
            ["--replicaof", "127.0.0.1", str(master.server.port)],
        )
        replica.start()
        try:
            replica.wait_ready()
            deadline = time.monotonic() + 20
            with replica.client() as client:  # synced: the first full copy is loaded
                while client.info("replication").get("master_link_status") != "up":
                    assert time.monotonic() < deadline, "the replica did not sync"
                    time.sleep(0.05)
            yield Pair(master, replica)
        finally:
            replica.stop()


def test_the_url_options_are_read_and_checked() -> None:
    target = parse_url("redis://127.0.0.1:6379/0?socket_timeout=5&wait_replicas=2&wait_timeout_ms=300")
    assert target.replication == Replication(2, 300)
    assert "wait_" not in target.url and "socket_timeout=5" in target.url  # redis-py's own stay
    assert parse_url("redis+sentinel://127.0.0.1:26379/m?wait_replicas=1").replication == Replication(1, 1000)
    assert parse_url("redis://127.0.0.1").replication.replicas == 0
    with pytest.raises(RedisUrlError, match="whole numbers, got 'two'"):
        parse_url("redis://127.0.0.1?wait_replicas=two")
    with pytest.raises(RedisUrlError, match="WAIT 0 would block forever"):
        parse_url("redis://127.0.0.1?wait_replicas=1&wait_timeout_ms=0")


def test_the_environment_sets_it_for_urls_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TQFLOW_WAIT_REPLICAS", "1")
    assert parse_url("redis://127.0.0.1").replication == Replication(1, 1000)
    assert parse_url("redis://127.0.0.1?wait_replicas=0").replication.replicas == 0


async def test_an_acknowledged_submit_is_on_the_replica(pair: Pair, namespace: str) -> None:
    client = Client.from_url(pair.url + "?wait_replicas=1&wait_timeout_ms=10000", namespace)  # a slow box
    try:
        for _ in range(20):  # each return means the replica has it (no sleep, no poll)
            job_id = await client.enqueue(jt.add, x=1, keep_result=True)
            assert await client.job(job_id)
            assert pair.replica_client.xlen(client.keys.stream("default", 2)) > 0
        ids = await client.enqueue_many([(jt.add, {"x": i}) for i in range(50)])
        assert pair.replica_client.xlen(client.keys.stream("default", 2)) >= 70 and len(ids) == 50
        await client.deploy(plan_of("diamond.tqflow"))
        run_id = await client.start_run("diamond")
        assert pair.on_replica(client.keys.run(run_id))
    finally:
        await client.close()


async def test_a_replica_that_does_not_answer_is_reported_with_the_ids(pair: Pair, namespace: str) -> None:
    client = Client.from_url(pair.url + "?wait_replicas=1&wait_timeout_ms=150", namespace)
    sync = SyncClient.from_url(pair.url + "?wait_replicas=1&wait_timeout_ms=150", namespace)
    try:
        await client.deploy(plan_of("diamond.tqflow"))
        with pair.paused():
            with pytest.raises(NotReplicated, match="0 of 1 replicas acknowledged within 150 ms") as one:
                await client.enqueue(jt.add, x=1, keep_result=True)
            [job_id] = one.value.ids
            assert (await client.job(job_id)).state == "queued"  # done on the master: check, don't resend
            with pytest.raises(NotReplicated) as many:
                await client.enqueue_many([(jt.add, {"x": i}) for i in range(3)])
            assert len(many.value.ids) == 3 and (many.value.acknowledged, many.value.wanted) == (0, 1)
            with pytest.raises(NotReplicated) as run:
                await client.start_run("diamond")
            assert (await client.run_info(run.value.ids[0])).flow == "diamond"
            with pytest.raises(NotReplicated):
                await asyncio.to_thread(sync.enqueue, jt.add, x=2)
    finally:
        sync.close()
        await client.close()


async def test_tqc_and_post_jobs_wait_too(pair: Pair, namespace: str) -> None:
    waits = pair.url + "?wait_replicas=1&wait_timeout_ms=10000"
    short = pair.url + "?wait_replicas=1&wait_timeout_ms=150"
    submit = ("jobs", "submit", jt.add.name, "-a", "x=3", "--unregistered")
    made = await asyncio.to_thread(tqc_on, waits, namespace, *submit)
    assert made.returncode == 0, made.stderr
    client = Client.from_url(pair.url, namespace)
    app, late_app = create_app(ApiSettings(waits, namespace)), create_app(ApiSettings(short, namespace))
    try:
        assert pair.replica_client.xlen(client.keys.stream("default", 2)) == 1
        await catalog.publish(client.redis, client.keys, TASKS)  # as a worker does: POST /jobs checks names
        body = {"task": jt.add.name, "kwargs": {"x": 1}}
        async with api(app) as http, api(late_app) as late_http:
            ok = await http.post("/jobs", json=body)
            assert ok.status_code == 201, ok.text
            assert pair.replica_client.xlen(client.keys.stream("default", 2)) == 2
            with pair.paused():
                late = await late_http.post("/jobs", json=body)
                refused = await asyncio.to_thread(tqc_on, short, namespace, *submit)
        assert late.status_code == 503 and len(late.json()["ids"]) == 1, late.text
        assert "replicas acknowledged" in late.json()["detail"]
        assert refused.returncode == 8 and "replicas acknowledged" in refused.stderr, refused
    finally:
        await app.state.services.close()
        await late_app.state.services.close()
        await client.close()


def api(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
