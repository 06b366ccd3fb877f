"""Codecs and compressions per task and per job, bodies stored as bytes, against a real Redis.

The bytes Redis holds are checked against a reference built with msgpack, json, zlib and zstandard
directly (Redis' own SHA-1 and length of the stored field), never with tqflow's encoder.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import zlib
from typing import Any

import httpx
import msgpack
import pytest
import zstandard
from redis.asyncio import Redis

from tqflow.runtime import catalog, task
from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.jobs import JobFailed
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.store import lean, payloads, records
from tqflow.runtime.store.payloads import PayloadError, PayloadSettings
from tqflow.runtime.sync import SyncClient

from cli_runner import Ran, tqc_on
from helpers import FLOWS, WorkerFactory

TASKS = load_tasks(["codec_tasks"], [FLOWS])
import codec_tasks as ct  # noqa: E402 - loaded from tests/flows above

# The field's SHA-1 and length as Redis computes them (KEYS[1]: a stream with ARGV[1] the entry id and
# ARGV[2] the field, or a hash with ARGV[2] the field when ARGV[1] is '').
STORED = """
local v
if ARGV[1] == '' then
  v = redis.call('HGET', KEYS[1], ARGV[2])
  local ran = not v and ARGV[2] == 'result' and redis.call('HGET', KEYS[1], 'ran')
  if ran then  -- a lean success's end, packed (store/endrow.py): the result after the arguments
    local at = 0
    for _ = 1, 5 do at = string.find(ran, '\\31', at + 1, true) end
    local stop = string.find(ran, '\\31', at + 1, true)
    v = string.sub(ran, stop + 1 + tonumber(string.sub(ran, at + 1, stop - 1)))
  end
else
  local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])[1][2]
  for i = 1, #e, 2 do if e[i] == ARGV[2] then v = e[i + 1] end end
end
return {redis.sha1hex(v), #v}
"""


def rows(n: int) -> list[dict[str, Any]]:
    """Records like a task's arguments: ~1.2 KB of JSON for n=15 (the issue's example size)."""
    cities = ["Lisbon", "Oslo", "Quito", "Nairobi"]
    return [
        {
            "id": 10_000 + i,
            "name": f"customer-{i:06d}",
            "city": cities[i % 4],
            "amount": i * 41.25,
            "vip": i % 3 == 0,
        }
        for i in range(n)
    ]


def reference(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def json_text(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


async def stored(redis: Redis, key: str, field: str, entry: str = "") -> tuple[str, int]:
    sha, size = await redis.eval(STORED, 1, key, entry, field)  # type: ignore[misc]
    return str(sha), int(size)


async def stored_args(client: Client, job_id: str) -> tuple[str, int]:
    where = lean.parse(job_id)
    if where is not None and await client.redis.hget(client.keys.job(job_id), "payload") is None:
        queue, level, entry = where
        return await stored(client.redis, client.keys.stream(queue, level), "p", entry)
    return await stored(client.redis, client.keys.job(job_id), "payload")


async def result_of(redis: Redis, key: str) -> str | None:
    """A job's stored result as the client reads it (store/records.py: a lean success's packed end too)."""
    return records.fields(await redis.hgetall(key)).get("result")


def expect(data: bytes) -> tuple[str, int]:
    return hashlib.sha1(data).hexdigest(), len(data)


async def published(redis: Redis, client: Client, name: str) -> None:
    for _ in range(500):
        if await redis.hexists(catalog.catalog_key(client.keys), name):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no worker published {name}")


async def test_msgpack_bodies_are_bytes_and_smaller_than_json(
    client: Client, start_worker: WorkerFactory
) -> None:
    value = {"value": {"batch": "2026-12-02", "rows": rows(15)}}
    as_json = await client.enqueue(ct.echo, **value)
    as_msgpack = await client.enqueue(ct.echo, codec="msgpack", **value)
    json_body = b"J-1|" + json_text(value)
    msgpack_body = b"Mb1|" + reference(value)
    assert 1100 < len(json_body) < 1400  # about the 1,244 B
    assert await stored_args(client, as_json) == expect(json_body)
    assert await stored_args(client, as_msgpack) == expect(msgpack_body)
    assert len(msgpack_body) < len(json_body)  # base64 made it 1/3 larger than its bytes
    await start_worker(TASKS)
    assert await client.result(as_msgpack, timeout=10) == value["value"]
    assert await client.result(as_json, timeout=10) == value["value"]
    # a task without a codec of its own answers in the codec the job chose
    key = client.keys.job(as_msgpack)
    assert await stored(client.redis, key, "result") == expect(b"Mb|" + reference(value["value"]))
    key = client.keys.job(as_json)
    assert await stored(client.redis, key, "result") == expect(b"J-|" + json_text(value["value"]))


async def test_a_tasks_codec_holds_by_object_and_by_name(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    # a worker on another queue publishes the catalog (what a job sent by name is encoded with) and runs
    # nothing, so each entry is still in its stream when its stored bytes are read
    await start_worker(TASKS, queues=["elsewhere"])
    await published(redis, client, ct.packed.name)
    data = rows(40)
    by_object = await client.enqueue(ct.packed, rows=data)
    by_name = await client.enqueue("codec_tasks.packed", rows=data)
    # what the call says wins over the task's own
    plain = await client.enqueue(ct.packed, rows=data[:10], codec="json", compression="none")
    compressed = zstandard.ZstdCompressor(level=3).compress(reference({"rows": data}))
    for job_id in (by_object, by_name):
        assert await stored_args(client, job_id) == expect(b"MS1|" + compressed)
    assert await stored_args(client, plain) == expect(b"J-1|" + json_text({"rows": data[:10]}))
    await start_worker(TASKS)
    for job_id in (by_object, by_name):
        assert await client.result(job_id, timeout=10) == {"count": 40, "rows": data}
        sha, size = await stored(redis, client.keys.job(job_id), "result")
        result = await result_of(redis, client.keys.job(job_id))
        assert result is not None and result.startswith("MS|")
        raw = result[3:].encode("utf-8", "surrogateescape")
        assert (sha, size) == expect(b"MS|" + raw)  # what was read is exactly what Redis holds
        assert msgpack.unpackb(zstandard.ZstdDecompressor().decompress(raw)) == {"count": 40, "rows": data}
    assert await client.result(plain, timeout=10) == {"count": 10, "rows": data[:10]}
    result = await result_of(redis, client.keys.job(plain))
    assert result is not None and result.startswith("MS|")  # the result: the task's codec still


async def test_bytes_survive_every_byte_value(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    await start_worker(TASKS)
    job_id = await client.enqueue(ct.blob, times=3)
    assert await client.result(job_id, timeout=10) == ct.ALL_BYTES * 3
    assert await stored(redis, client.keys.job(job_id), "result") == expect(
        b"Mb|" + reference(ct.ALL_BYTES * 3)
    )
    # bytes in the arguments too: every byte value and '|'
    echoed = await client.enqueue(ct.echo, value=ct.ALL_BYTES, codec="msgpack")
    assert await client.result(echoed, timeout=10) == ct.ALL_BYTES
    # shown by the API and `tqc jobs show --json` as base64 (raw bytes are not JSON text)
    view = await Inspector(redis, client.keys.namespace).job(echoed)
    shown = {"$base64": base64.b64encode(ct.ALL_BYTES).decode()}
    assert json.loads(view.model_dump_json())["args"] == {"value": shown}
    assert json.loads(view.model_dump_json())["result"] == shown


async def test_a_caller_made_client_reads_binary_bodies(
    redis_url: str, namespace: str, client: Client
) -> None:
    plain = connect(redis_url, namespace=namespace)
    plain.connection_pool.connection_kwargs["encoding_errors"] = "strict"  # as redis-py makes a client
    mine = Client(plain, namespace)
    job_id = await mine.enqueue(ct.echo, value=ct.ALL_BYTES, codec="msgpack")
    assert (await mine.job(job_id)).state == "queued"
    assert await stored_args(client, job_id) == expect(b"Mb1|" + reference({"value": ct.ALL_BYTES}))
    await mine.waiter.close()
    await plain.aclose()


async def test_sync_client_and_bulk_take_codecs(
    client: Client, redis_url: str, namespace: str, start_worker: WorkerFactory
) -> None:
    big = {"value": "tqflow " * 100}

    def use() -> tuple[str, list[Any], list[Any]]:
        with SyncClient.from_url(redis_url, namespace) as sync:
            one = sync.enqueue(ct.echo, codec="msgpack", compression="zlib", **big)
            many = sync.enqueue_many(
                [(ct.echo, big), (ct.echo, big, {"codec": "json", "compression": "none"})],
                codec="msgpack",
                compression="zstd",
            )
            mixed = sync.enqueue_many([(ct.echo, big), (ct.echo, big, {"codec": "yaml"})], atomic=False)
            return one, many, mixed

    one, many, mixed = await asyncio.to_thread(use)
    assert await stored_args(client, one) == expect(b"MZ1|" + zlib.compress(reference(big), 6))
    zstd = zstandard.ZstdCompressor(level=3).compress(reference(big))
    assert await stored_args(client, many[0]) == expect(b"MS1|" + zstd)
    assert await stored_args(client, many[1]) == expect(b"J-1|" + json_text(big))
    assert mixed[0].status == "ok"
    assert (
        mixed[1].status == "error" and "codec 'yaml' is not one of json, msgpack, pickle" in mixed[1].detail
    )
    await start_worker(TASKS)
    for job_id in (one, *many, mixed[0]):
        assert await client.result(job_id, timeout=10) == big["value"]


async def test_bad_choices_say_what_is_wrong(client: Client) -> None:
    with pytest.raises(ValueError, match="codec 'yaml' is not one of json, msgpack, pickle"):
        await client.enqueue(ct.echo, value=1, codec="yaml")
    with pytest.raises(ValueError, match="compression 'lz4' is not one of none, zlib, zstd"):
        await client.enqueue(ct.echo, value=1, compression="lz4")
    with pytest.raises(ValueError, match="signing key"):
        await client.enqueue(ct.pickled, value=1)  # the task's codec, and this client has no key
    with pytest.raises(ValueError, match="@task: codec 'yaml'"):
        task(codec="yaml")(lambda: None)


async def test_a_pickle_task_on_a_worker_without_a_key_fails_clearly(
    redis: Redis, namespace: str, start_worker: WorkerFactory
) -> None:
    signed = Client(redis, namespace, PayloadSettings(signing_key=b"k"))
    await start_worker(TASKS)
    job_id = await signed.enqueue(ct.pickled, value=1)
    with pytest.raises(JobFailed) as caught:
        await signed.result(job_id, timeout=10)
    assert caught.value.error["type"] == "PayloadError" and "no signing key" in caught.value.error["message"]
    await signed.waiter.close()


async def test_payloads_written_before_bodies_were_bytes_still_run(
    client: Client, start_worker: WorkerFactory
) -> None:
    value = {"value": [1, "two", 3.5]}
    old_msgpack = "M-|" + base64.b64encode(reference(value)).decode()
    old_zlib = "Mz|" + base64.b64encode(zlib.compress(reference(value))).decode()
    old_json = "Jz|" + base64.b64encode(zlib.compress(json_text(value))).decode()
    ids = []
    for text in (old_msgpack, old_zlib, old_json):
        entry = await client.redis.xadd(client.keys.stream("default", 2), {"t": ct.echo.name, "p": text})
        ids.append(lean.lean_id("default", 2, str(entry)))
    await start_worker(TASKS)
    for job_id in ids:
        assert await client.result(job_id, timeout=10) == value["value"]


async def test_post_jobs_takes_a_codec(
    client: Client, redis: Redis, api: httpx.AsyncClient, start_worker: WorkerFactory
) -> None:
    await start_worker(TASKS)
    await published(redis, client, ct.echo.name)
    big = {"value": "tqflow " * 100}
    reply = await api.post(
        "/jobs", json={"task": ct.echo.name, "kwargs": big, "codec": "msgpack", "compression": "zstd"}
    )
    assert reply.status_code == 201, reply.text
    job_id = reply.json()["id"]
    assert await client.result(job_id, timeout=10) == big["value"]
    zstd = zstandard.ZstdCompressor(level=3).compress(reference(big))
    assert await stored_args(client, job_id) == expect(b"MS1|" + zstd)
    shown = (await api.get(f"/jobs/{job_id}")).json()
    assert (shown["codec"], shown["compression"], shown["args"]) == ("msgpack", "zstd", big)
    bad = await api.post("/jobs", json={"task": ct.echo.name, "kwargs": big, "codec": "pickle"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "codec"]
    tasks = {t["name"]: t for t in (await api.get("/api/tasks")).json()}
    assert (tasks[ct.packed.name]["codec"], tasks[ct.packed.name]["compression"]) == ("msgpack", "zstd")


def tqc(redis_url: str, namespace: str, *args: str) -> Ran:
    return tqc_on(redis_url, namespace, *args, path=[FLOWS])


async def test_tqc_jobs_submit_and_show_the_codec(client: Client, redis_url: str, namespace: str) -> None:
    made = await asyncio.to_thread(
        tqc,
        redis_url,
        namespace,
        "jobs",
        "submit",
        ct.echo.name,
        "-a",
        'value={"n": [1, 2]}',
        "--codec",
        "msgpack",
        "--priority",
        "high",
        "--unregistered",  # no worker has published it (its published codec would be its own)
    )
    assert made.returncode == 0, made.stderr
    job_id = made.stdout.strip()
    assert lean.parse(job_id)[:2] == ("default", 1)
    assert await stored_args(client, job_id) == expect(b"Mb|" + reference({"value": {"n": [1, 2]}}))
    shown = await asyncio.to_thread(tqc, redis_url, namespace, "jobs", "show", job_id)
    assert "payload   msgpack, none" in shown.stdout, shown.stdout
    bad = await asyncio.to_thread(tqc, redis_url, namespace, "jobs", "submit", ct.echo.name, "-a", "oops")
    assert bad.returncode != 0 and "'oops' is not NAME=VALUE" in bad.stderr


# -- the decompressed-size cap (issue 14, F16) for zstd: no Redis needed -----------------------------


def test_a_zstd_bomb_is_refused_within_the_cap() -> None:
    settings = PayloadSettings(max_bytes=1_000_000)
    body = b'{"value": "' + b"0" * 50_000_000 + b'"}'
    bombs = {
        "says its size": zstandard.ZstdCompressor(level=3),  # refused unread
        "says nothing, small window": zstandard.ZstdCompressor(  # read until past the cap
            compression_params=zstandard.ZstdCompressionParameters(window_log=20, write_content_size=False)
        ),
        "says nothing, 128 MB window": zstandard.ZstdCompressor(  # the window alone is past the cap
            compression_params=zstandard.ZstdCompressionParameters(window_log=27, write_content_size=False)
        ),
    }
    for kind, squeeze in bombs.items():
        text = "JS|" + squeeze.compress(body).decode("utf-8", "surrogateescape")
        assert len(text.encode("utf-8", "surrogateescape")) < 100_000, kind  # 50 MB in a few KB
        with pytest.raises(PayloadError, match="decompresses past the limit of 1000000 bytes"):
            payloads.decode(text, settings)
    with pytest.raises(PayloadError, match="corrupt payload body"):
        payloads.decode("JS|not zstd at all", settings)
    fine = payloads.encode({"value": "0" * 900_000}, PayloadSettings(compression="zstd"))
    assert fine.startswith("JS|") and payloads.value(fine, settings) == {"value": "0" * 900_000}


def test_compression_is_kept_only_when_it_shrinks() -> None:
    tiny = PayloadSettings(codec="msgpack", compression="zstd")
    assert payloads.encode({"a": 1}, tiny).startswith("Mb|")  # under 64 bytes: not compressed
    assert payloads.encode({"a": os.urandom(300)}, tiny).startswith("Mb|")  # noise does not shrink
    assert payloads.encode({"a": "x" * 500}, tiny).startswith("MS|")
    assert payloads.encode({"a": "x" * 500}, PayloadSettings(compress_over=10)).startswith("JZ|")  # zlib
