"""hiredis packing for asyncio connections (runtime/packing.py): the same bytes as redis-py's own packer,
and what hiredis cannot pack exactly as redis-py would goes to redis-py's packer unchanged."""

from __future__ import annotations

import enum
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import DataError

from tqflow.runtime.connection import connect
from tqflow.runtime.packing import HiredisPacking, pack_with_hiredis, packing_class


class Level(enum.IntEnum):
    HIGH = 1


COMMANDS: list[tuple[Any, ...]] = [
    ("SET", "k", "v"),
    ("EVALSHA", "a" * 40, 2, "{ns}:job:1", "{ns}:job:2", 1732751234567, -5, 0, "", "succeeded"),
    ("SET", "k", 0.1 + 0.2, 1e20, 1e-7, float("inf"), 2**70),
    ("SET", "k", b"\xff\x00 raw", bytearray(b"ba"), memoryview(b"mv")),
    ("SET", "k", "caf\u00e9 \u2603 \U0001f600"),
    ("SET", "k", "Mb|\udcff\udc80"),  # bytes carried as surrogate escapes (store/payloads.py)
    ("SET", "k", Level.HIGH),  # an int subclass: redis-py writes its repr
    ("CONFIG GET", "maxmemory"),  # a command name with a space: redis-py splits it
    ("SET", "k", "x" * 20_000),  # past redis-py's buffer cutoff
]


def redis_py_bytes(args: tuple[Any, ...]) -> bytes:
    plain = Connection(decode_responses=True, encoding_errors="surrogateescape")
    return b"".join(bytes(chunk) for chunk in plain.pack_command(*args))


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: repr(a)[:40])
def test_same_bytes_as_redis_py(args: tuple[Any, ...]) -> None:
    packed = packing_class(Connection)(decode_responses=True, encoding_errors="surrogateescape")
    assert b"".join(packed.pack_command(*args)) == redis_py_bytes(args)


def test_what_redis_py_refuses_is_refused() -> None:
    packed = packing_class(Connection)(decode_responses=True)
    for bad in (True, None, object()):
        with pytest.raises(DataError):
            packed.pack_command("SET", "k", bad)


def test_another_encoding_is_redis_pys() -> None:
    packed = packing_class(Connection)(encoding="latin-1")
    expected = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\ncaf\xe9\r\n"
    assert b"".join(packed.pack_command("SET", "k", "caf\u00e9")) == expected


def test_classes() -> None:
    unix = packing_class(UnixDomainSocketConnection)
    assert issubclass(unix, HiredisPacking) and issubclass(unix, UnixDomainSocketConnection)
    assert packing_class(unix) is unix  # not wrapped twice


async def test_connections_pack_with_hiredis_and_round_trip(redis_url: str, namespace: str) -> None:
    """A `connect` client and a caller's client given to a worker both pack with hiredis; values,
    including bytes that are not UTF-8, come back from a real Redis as they went."""
    mine = connect(redis_url, namespace=namespace)
    theirs = Redis(decode_responses=True, encoding_errors="surrogateescape")  # never connected
    pack_with_hiredis(theirs)
    assert issubclass(mine.connection_pool.connection_class, HiredisPacking)
    assert issubclass(theirs.connection_pool.connection_class, HiredisPacking)
    await theirs.aclose()
    key = f"{{{namespace}}}:packing"
    try:
        values = ["plain", "caf\u00e9 \u2603", "Mb|\udcff\udc80", "x" * 20_000]
        await mine.rpush(key, *values, 7, 0.5)
        assert await mine.lrange(key, 0, -1) == [*values, "7", "0.5"]
        assert await mine.execute_command("STRLEN", key + "missing") == 0
    finally:
        await mine.delete(key)
        await mine.aclose()
