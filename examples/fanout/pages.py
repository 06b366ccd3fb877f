"""Tasks for the fan-out example: no network, the "pages" are made up from their URLs."""

from __future__ import annotations

import asyncio
import hashlib

from tqflow.runtime import task


@task
def discover(site: str, count: int) -> list[str]:
    return [f"https://{site}/page/{i}" for i in range(count)]


@task
async def measure(url: str) -> dict[str, object]:
    await asyncio.sleep(0.01)  # stands for a download
    size = int(hashlib.sha256(url.encode()).hexdigest()[:4], 16)
    return {"url": url, "bytes": size}


@task
def report(sizes: list[dict[str, object]]) -> dict[str, object]:
    largest = max(sizes, key=lambda s: int(str(s["bytes"]))) if sizes else {"url": None}
    return {
        "pages": len(sizes),
        "total_bytes": sum(int(str(s["bytes"])) for s in sizes),
        "largest": largest["url"],
    }
