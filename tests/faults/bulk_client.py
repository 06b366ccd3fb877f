"""A client process for F9: says `go`, then submits one atomic bulk of N delayed jobs, then says `done`.

python bulk_client.py REDIS_URL NAMESPACE N
"""

from __future__ import annotations

import asyncio
import sys

from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect


async def main(url: str, namespace: str, count: int) -> None:
    redis = connect(url)
    client = Client(redis, namespace)
    calls = [("f9.job", {"n": n}) for n in range(count)]
    print("go", flush=True)
    await client.enqueue_many(calls, delay="1h")
    print("done", flush=True)
    await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
