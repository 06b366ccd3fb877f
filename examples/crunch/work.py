"""Tasks for the CPU-bound example: `digest` runs in the worker's process pool."""

from __future__ import annotations

import hashlib

from tqflow.runtime import task


@task
def make_blocks(count: int) -> list[str]:
    return [f"block-{i}" for i in range(count)]


@task(executor="process")
def digest(seed: str, rounds: int) -> str:
    value = seed.encode()
    for _ in range(rounds):
        value = hashlib.sha256(value).digest()
    return value.hex()


@task
def combine(digests: list[str]) -> str:
    return hashlib.sha256("".join(digests).encode()).hexdigest()[:16]
