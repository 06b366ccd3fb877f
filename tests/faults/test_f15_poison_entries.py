"""F15: poison entries and records (RELIABILITY.md). Queued stream entries whose every field is replaced by
garbage (bad JSON, wrong types, bytes that are not UTF-8), entries with extra unknown fields, and job records
whose fields were overwritten, fed to two supervised worker processes while good jobs flow. Each bad item is
dead-lettered with its reason within the delivery limit, no worker exits (a restart loop is impossible) and
the good jobs all succeed.

Slice by default; `TQFLOW_FAULT_SCALE=full pytest -m faults tests/faults/test_f15_poison_entries.py -s`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from harness import FULL, HERE, Workers, pending, seeded
from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.embedded import EmbeddedRedis
from tqflow.runtime.store.keys import Keys

sys.path.insert(0, str(HERE / "flows"))
import malformed_tasks as mt

pytestmark = pytest.mark.faults
TASK = "malformed_tasks.echo"
OK = 'J-|{"text": "x"}'
BYTES = b"\xff\xfe\x00garbage\xc3"
MAX_DELIVERIES = 3

# Lean entries (a queued job as its stream entry alone: t task, p payload, o options).
ENTRIES: dict[str, dict[str, Any]] = {
    "options not JSON": {"t": TASK, "p": OK, "o": "{{{"},
    "options a list": {"t": TASK, "p": OK, "o": "[1, 2]"},
    "timeout not a number": {"t": TASK, "p": OK, "o": '{"t": "soon"}'},
    "retry policy garbage": {"t": TASK, "p": OK, "o": '{"r": "garbage"}'},
    "retry policy wrong types": {"t": TASK, "p": OK, "o": '{"r": {"attempts": "many"}}'},
    "task not UTF-8": {"t": BYTES, "p": OK},
    "payload not UTF-8": {"t": TASK, "p": BYTES},
    "options not UTF-8": {"t": TASK, "p": OK, "o": BYTES},
    "every field garbage": {"t": "{{{", "p": "{{{", "o": "{{{"},
    "every field bytes": {"t": BYTES, "p": BYTES, "o": BYTES},
    "job field garbage": {"j": BYTES},
    "no known field": {"zzz": "1"},
}
# Extra unknown fields on a good entry: ignored, the job runs.
EXTRA = {"t": TASK, "p": OK, "zzz": "1", "j2": "x", "o2": "{{{"}
# Fields of a queued job's record overwritten with garbage (the record of a job queued with `j`).
RECORDS: dict[str, dict[str, Any]] = {
    "attempt not a number": {"attempt": "abc"},
    "opts not JSON": {"opts": "{{{"},
    "priority out of range": {"prio": "9"},
    "enqueued not a number": {"enqueued": "yesterday"},
    "deadline not a number": {"deadline_at": "never"},
    "task garbage": {"task": BYTES},
    "payload garbage": {"payload": "{{{"},
    "run of no run": {"run": "no-such-run", "args": "{{{"},
    "data deps not JSON": {"run": "no-such-run", "data_deps": "{{{"},
    "every field garbage": {
        f: BYTES for f in ("task", "payload", "opts", "prio", "enqueued", "deadline_at", "attempt", "queue")
    },
}


async def poison_record(redis: Redis, client: Client, keys: Keys, fields: dict[str, Any]) -> str:
    """A job queued on its stream with a `j` entry, whose record was overwritten before it started."""
    job = await client.enqueue(TASK, text="fine", delay="1h")
    await redis.zrem(keys.delayed, job)
    await redis.hset(keys.job(job), mapping=fields)
    # queued on its stream in one step, so no worker reads the entry before the record names it
    queue = (
        "local e = redis.call('XADD', KEYS[2], '*', 'j', ARGV[1])"
        " redis.call('HSET', KEYS[1], 'state', 'queued', 'entry', e)"
    )
    await redis.eval(queue, 2, keys.job(job), keys.stream("default", 2), job)  # type: ignore[misc]
    return job


async def supervise(workers: Workers, until: float, crashes: list[int]) -> None:
    """Restart any worker that exited (what systemd would do) and count the exits."""
    while time.monotonic() < until:
        for proc in list(workers.procs.values()):
            if proc.poll() is not None and proc.pid not in workers.killed:
                crashes.append(proc.returncode)
                workers.killed.add(proc.pid)
                workers.start()
        await asyncio.sleep(0.1)


async def test_f15_poison_entries_dead_lettered_workers_stay_up(tmp_path: Path) -> None:
    seeded("F15")
    rounds = 5 if FULL else 1
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    redis = connect(server.url)
    raw = Redis(unix_socket_path=str(server.socket_path))  # bytes in, bytes out
    client = Client(redis, "f15")
    keys = Keys("f15")
    workers = Workers(
        server.url,
        "f15",
        tmp_path / "ledger",
        extra=["--tasks", "malformed_tasks", "--max-deliveries", str(MAX_DELIVERIES), "--lease", "1500"],
        stderr=tmp_path / "workers.log",
    )
    crashes: list[int] = []
    try:
        for _ in range(2):
            workers.start()
        await workers.ready(redis, keys, 2)
        watcher = asyncio.create_task(supervise(workers, time.monotonic() + 3600, crashes))
        stream = keys.stream("default", 2)
        lean_ids: dict[str, str] = {}
        records: dict[str, str] = {}
        good: list[str] = []
        extra: list[str] = []
        for r in range(rounds):
            for name, fields in ENTRIES.items():
                eid = (await raw.xadd(stream, fields)).decode()
                lean_ids[f"{name} #{r}"] = eid
            extra.append(f"default.2.{(await raw.xadd(stream, EXTRA)).decode()}")
            for name, fields in RECORDS.items():
                records[f"{name} #{r}"] = await poison_record(redis, client, keys, fields)
            good += [await client.enqueue(TASK, text=f"ok{n}") for n in range(20)]
        deadline = time.monotonic() + 60
        while True:
            verdicts = {name: await verdict(client, keys, eid) for name, eid in lean_ids.items()}
            for name, job in records.items():
                verdicts[name + " (record)"] = await record_verdict(client, job)
            goods = [(await client.job(g)).state for g in [*good, *extra]]
            settled = all(v[0] == "dead" for v in verdicts.values()) and all(s == "succeeded" for s in goods)
            if settled or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        left = await pending(redis, keys)
        watcher.cancel()
    finally:
        workers.stop_all()
        await redis.aclose()
        await raw.aclose()
        server.stop()
    for name, (state, attempts, reason) in verdicts.items():
        print(f"[F15] {name}: {state} after {attempts} attempt(s): {reason[:90]}")
    good_ok = sum(1 for s in goods if s == "succeeded")
    print(
        f"[F15] poison={len(verdicts)} dead={sum(1 for v in verdicts.values() if v[0] == 'dead')}"
        f" worker_exits={len(crashes)} good_succeeded={good_ok}/{len(goods)} pending_left={left}"
    )
    log = (tmp_path / "workers.log").read_text()
    assert not crashes, log[-3000:]
    for name, (state, attempts, reason) in verdicts.items():
        assert state == "dead" and reason and attempts <= MAX_DELIVERIES, (name, state, attempts, reason)
    assert good_ok == len(goods) and left == 0


async def verdict(client: Client, keys: Keys, eid: str) -> tuple[str, int, str]:
    """A raw entry's end: its lean job's record, or the DLQ record of a malformed entry."""
    for job in (f"default.2.{eid}", f"malformed-default-2-{eid}"):
        info = await client.redis.hgetall(keys.job(job))
        if info:
            return info.get("state", ""), int(info.get("attempt") or 0), info.get("error", "")
    return "", 0, ""


async def record_verdict(client: Client, job: str) -> tuple[str, int, str]:
    info = await client.redis.hgetall(client.keys.job(job))
    attempts = info.get("attempt", "0")
    return info.get("state", ""), int(attempts) if attempts.isdigit() else 0, info.get("error", "")


async def test_f15_a_job_that_crashes_its_worker_is_dead_lettered_not_requeued_forever(
    client: Client, redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever makes the worker itself fail (a bug no test foresaw) must not become a restart loop: the
    hand-back of a crashing worker counts a lost delivery, so the job is dead-lettered at the limit."""
    from tqflow.runtime.cluster.settings import ClusterSettings
    from tqflow.runtime.worker import Worker, WorkerSettings
    from tqflow.runtime.worker.runner import Runner

    spawn = Runner.spawn

    def crash_on_poison(self: Runner, attempt: Any) -> Any:
        if attempt.payload and "poison" in str(attempt.payload):
            raise RuntimeError("the worker fails on this job")
        return spawn(self, attempt)

    monkeypatch.setattr(Runner, "spawn", crash_on_poison)
    poison = await client.enqueue(mt.echo, text="poison")
    good = await client.enqueue(mt.echo, text="fine")
    cluster = ClusterSettings(max_deliveries=MAX_DELIVERIES, heartbeat_ms=100, grace_s=0.1)
    restarts = 0
    while restarts < 4 * MAX_DELIVERIES:  # the supervisor's restart loop
        restarts += 1
        connection = connect(redis_url)
        worker = Worker(
            connection,
            {mt.echo.name: mt.echo},
            client.keys.namespace,
            WorkerSettings(block_ms=100, cluster=cluster),
        )
        stop = asyncio.Event()
        try:
            with pytest.raises(RuntimeError):
                await asyncio.wait_for(worker.run(stop), 20)
        finally:
            await connection.aclose()
        if (await client.job(poison)).state == "dead":
            break
    info = await client.job(poison)
    print(f"[F15] crashing job: {info.state} after {restarts} worker crashes: {info.error}")
    assert info.state == "dead" and (info.error or {}).get("type") == "WorkerLost"
    assert restarts == MAX_DELIVERIES
    assert (await client.job(good)).state in ("queued", "succeeded")
