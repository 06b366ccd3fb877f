"""F8: malformed input (RELIABILITY.md). Raw stream entries with missing fields or unknown jobs, bad JSON,
unknown task names, oversized payloads, a pickle whose __reduce__ would create a file, and malformed and
huge .tqflow files. No worker crashes; each bad item is dead-lettered with a reason; the file never appears.
"""

from __future__ import annotations

import asyncio
import base64
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from harness import FULL, HERE, pending, seeded
from redis.asyncio import Redis

from tqflow.compiler import compile_source
from tqflow.dsl.source import Source
from tqflow.runtime.client import Client
from tqflow.runtime.store.payloads import PayloadError, PayloadSettings

from helpers import WorkerFactory

sys.path.insert(0, str(HERE / "flows"))
import malformed_tasks as mt

pytestmark = pytest.mark.faults
TASKS = {mt.echo.name: mt.echo}


class MakesAFile:
    """Unpickling this calls os.mkdir(path): the proof of code execution we must never see."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (self.path,))


def evil_pickle(path: Path, signature: str | None) -> str:
    body = base64.b64encode(pickle.dumps({"text": MakesAFile(str(path))})).decode()
    return f"P-|{body}" if signature is None else f"P-|{signature}|{body}"


async def corrupt(redis: Redis, client: Client, payload: str) -> str:
    """A job whose stored payload was overwritten by someone with write access to Redis."""
    job = await client.enqueue(mt.echo, text="fine", delay="1h")
    await redis.hset(client.keys.job(job), "payload", payload)
    await redis.zadd(client.keys.delayed, {job: 0})  # due now
    return job


async def until_terminal(client: Client, ids: list[str], timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        infos = {i: await client.job(i) for i in ids}
        if all(info.state in ("succeeded", "dead") for info in infos.values()):
            return infos
        assert time.monotonic() < deadline, {i: info.state for i, info in infos.items()}
        await asyncio.sleep(0.1)


async def test_f8_bad_stream_entries_and_payloads(
    client: Client, redis: Redis, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    rng = seeded("F8")
    marker = tmp_path / "pwned"
    settings = PayloadSettings(signing_key=b"k" * 32, max_bytes=100_000)
    worker = await start_worker(TASKS, payloads=settings, block_ms=100)
    stream = client.keys.stream("default", 2)
    await redis.xgroup_create(stream, client.keys.group, id="0", mkstream=True)
    raw = [
        {"x": "no job field"},
        {"j": ""},
        {"j": f"missing-{rng.randrange(1 << 30)}"},
        {"j": "a", "j2": "b"},
    ]
    for fields in raw:
        await redis.xadd(stream, fields)
    bad = {
        "bad json": await corrupt(redis, client, "J-|{not json"),
        "bad header": await corrupt(redis, client, "garbage without a header"),
        "wrong types": await corrupt(redis, client, 'J-|{"text": [1, 2]}'),
        "oversized": await corrupt(redis, client, "J-|" + '{"text": "' + "x" * 200_000 + '"}'),
        "unsigned pickle": await corrupt(redis, client, evil_pickle(marker, None)),
        "forged pickle": await corrupt(redis, client, evil_pickle(marker, "0" * 64)),
        "unknown task": await client.enqueue("nobody.has_this", text="x"),
    }
    good = [await client.enqueue(mt.echo, text=f"ok{n}") for n in range(20 if FULL else 5)]
    infos = await until_terminal(client, [*bad.values(), *good])
    await asyncio.sleep(0.3)  # let the raw entries be read too
    for name, job in bad.items():
        error = infos[job].error or {}
        print(f"[F8] {name}: {infos[job].state} {error.get('type')}: {str(error.get('message'))[:80]}")
        assert infos[job].state == "dead" and error.get("message"), (name, infos[job])
    assert all(infos[g].state == "succeeded" for g in good)
    assert not marker.exists(), "unpickling ran attacker code"
    dead = await client.dead_letters(limit=100)
    malformed = [d for d in dead if (d.error or {}).get("type") == "MalformedEntry"]
    for info in malformed:
        print(f"[F8] raw entry dead-lettered as {info.id}: {(info.error or {}).get('message')}")
    assert len(malformed) == len(raw)
    assert await pending(redis, client.keys) == 0
    assert await redis.xlen(stream) == 0
    assert worker.completed >= len(good)


async def test_f8_oversized_payloads_refused_by_the_client(client: Client, redis: Redis) -> None:
    with pytest.raises(PayloadError, match="over the limit"):
        await client.enqueue(mt.echo, text="x" * 2_000_000)
    assert await redis.exists(client.keys.delayed) == 0


MALFORMED = {
    "unclosed brace": ("use t as t\nflow f {\n  job a = t.x()\n", 3),
    "bad token": ("use t as t\nflow f {\n  job a = t.x(\n  ) $$$\n}\n", 4),
    "unknown job": ("use t as t\nflow f {\n  job a = t.x(y=b.out)\n}\n", 3),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_f8_malformed_tqflow_rejected_with_its_line(name: str) -> None:
    text, line = MALFORMED[name]
    result = compile_source(Source(str(HERE / "bad.tqflow"), text))
    assert result.plan is None
    lines = [d.span.line for d in result.diagnostics]
    print(f"[F8] {name}: {[d.message for d in result.diagnostics][:2]} at lines {lines}")
    assert line in lines


def test_f8_huge_tqflow_rejected_or_compiled_quickly() -> None:
    jobs = 20_000 if FULL else 2_000
    body = "".join(f"  job j{n} = t.x()\n" for n in range(jobs))
    text = f"use t as t\nflow f {{\n{body}  job broken = \n}}\n"
    began = time.monotonic()
    result = compile_source(Source(str(HERE / "huge.tqflow"), text))
    took = time.monotonic() - began
    lines = [d.span.line for d in result.diagnostics]
    print(f"[F8] huge file: {len(text)} bytes, {jobs} jobs, {took:.2f}s, diagnostic lines {lines[:3]}")
    assert result.plan is None and (jobs + 3 in lines or jobs + 4 in lines)
    garbage = "\x00\xff" * 500_000
    assert compile_source(Source(str(HERE / "garbage.tqflow"), garbage)).plan is None
