"""F16: payloads that inflate past the cap after decompression (RELIABILITY.md). The 1 MB cap applied to
the stored text only, so 407 KB of zlib inflated to 300 MB and ran. The cap now applies to what is decoded:
the client refuses to encode such a payload, and a worker refuses a stored one (dead-lettered with the
reason), inflating no more than the cap (its memory stays bounded).

zstd bodies (bytes, `JS|`) are held to the same cap, also when the frame does not say its size.

Slice by default (a 64 MB bomb); `TQFLOW_FAULT_SCALE=full` inflates to 300 MB.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from harness import FULL, HERE, Workers, seeded
from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.store import payloads
from tqflow.runtime.store.payloads import PayloadError, PayloadSettings

sys.path.insert(0, str(HERE / "flows"))
import malformed_tasks as mt

pytestmark = pytest.mark.faults
INFLATED = (300 if FULL else 64) * 1_000_000


def bomb(size: int) -> str:
    """A JSON payload of one `size`-byte string, zlib-compressed (a few hundred KB at most)."""
    squeeze = zlib.compressobj(9)
    parts = [squeeze.compress(b'{"text": "')]
    chunk = b"0" * 1_000_000
    for _ in range(size // len(chunk)):
        parts.append(squeeze.compress(chunk))
    parts += [squeeze.compress(b'"}'), squeeze.flush()]
    return "Jz|" + base64.b64encode(b"".join(parts)).decode()


def zstd_bomb(size: int) -> str:
    """The same payload zstd-compressed as bytes (the frame does not say its size: read to find out)."""
    squeeze = zstandard.ZstdCompressor(level=3, write_content_size=False).compressobj()
    parts = [squeeze.compress(b'{"text": "')]
    chunk = b"0" * 1_000_000
    for _ in range(size // len(chunk)):
        parts.append(squeeze.compress(chunk))
    parts += [squeeze.compress(b'"}'), squeeze.flush()]
    return "JS|" + b"".join(parts).decode("utf-8", "surrogateescape")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_f16_decoding_is_capped_after_decompression() -> None:
    text = bomb(20_000_000)
    settings = PayloadSettings(max_bytes=1_000_000)
    assert len(text) < settings.max_bytes  # the stored text passes the old check
    with pytest.raises(PayloadError, match="decompress"):
        payloads.decode(text, settings)
    small = payloads.encode({"text": "0" * 500_000}, PayloadSettings(compress_over=100))
    assert payloads.decode(small)[1] == {"text": "0" * 500_000}  # under the cap: still fine
    with pytest.raises(PayloadError, match="decompress"):
        payloads.decode(zstd_bomb(20_000_000), settings)


async def test_f16_client_refuses_what_inflates_past_the_cap(client: Client, redis: Redis) -> None:
    compressing = Client(redis, client.keys.namespace, PayloadSettings(compress_over=1000))
    with pytest.raises(PayloadError, match="over the limit"):
        await compressing.enqueue(mt.echo, text="0" * 5_000_000)  # ~5 KB compressed, 5 MB decoded
    assert await redis.xlen(client.keys.stream("default", 2)) == 0


@pytest.mark.parametrize("make", [bomb, zstd_bomb], ids=["zlib", "zstd"])
async def test_f16_worker_refuses_a_stored_zip_bomb(
    client: Client, redis: Redis, redis_url: str, tmp_path: Path, make: Callable[[int], str]
) -> None:
    seeded("F16")
    began = time.monotonic()
    text = make(INFLATED)
    workers = Workers(
        redis_url, client.keys.namespace, tmp_path / "ledger", extra=["--tasks", "malformed_tasks"]
    )
    try:
        proc = workers.start()
        await workers.ready(redis, client.keys, 1)
        base = peak_rss_mb(proc.pid)
        stream = client.keys.stream("default", 2)
        eid = await redis.xadd(stream, {"t": mt.echo.name, "p": text})  # written past the client
        good = await client.enqueue(mt.echo, text="fine")
        job = f"default.2.{eid}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = [(await client.job(j)).state for j in (job, good)]
            if all(s in ("succeeded", "dead") for s in states):
                break
            await asyncio.sleep(0.1)
        info = await client.job(job)
        peak = peak_rss_mb(proc.pid)
        alive = proc.poll() is None
    finally:
        workers.stop_all()
    error = info.error or {}
    print(
        f"[F16] {len(text) / 1000:.0f} KB stored, {INFLATED / 1e6:.0f} MB inflated: {info.state}"
        f" {error.get('type')}: {error.get('message')}; worker peak RSS {peak:.0f} MB"
        f" (at start {base:.0f} MB)"
        f" alive={alive} good={states[1]} in {time.monotonic() - began:.1f}s"
    )
    assert info.state == "dead" and error.get("type") == "PayloadError", info
    assert "decompress" in str(error.get("message"))
    assert states[1] == "succeeded" and alive
    assert peak - base < 50  # inflated no more than about the 1 MB cap, never the bomb
