"""Tasks for the codec tests: codecs and compressions chosen per task (tests/runtime/test_codecs.py)."""

from __future__ import annotations

from typing import Any

from tqflow.runtime import task

# Every byte value, '|' (the header's separator) among them, and sequences that are not UTF-8.
ALL_BYTES = bytes(range(256)) + b"|\xff\xfe\xed\xa0\x80|" * 3


@task(codec="msgpack", compression="zstd")
def packed(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"count": len(rows), "rows": rows}


@task(codec="msgpack")
def blob(times: int) -> bytes:
    return ALL_BYTES * times


@task
def echo(value: Any) -> Any:
    return value


@task(codec="pickle")
def pickled(value: Any) -> Any:
    return value
