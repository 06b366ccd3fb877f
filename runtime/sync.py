"""A thin synchronous wrapper over `Client` for code without an event loop (scripts, Django views, …).

    with SyncClient.from_url("redis://localhost:6379") as client:
        job_id = client.enqueue(resize, image="a.png")
        print(client.result(job_id, timeout=30))

The async client runs on a private event loop in a daemon thread; each call waits for its result.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect

T = TypeVar("T")


class SyncClient:
    def __init__(self, url: str, namespace: str = "tqflow", **client_options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tqflow-sync-client", daemon=True)
        self._thread.start()

        async def make() -> Client:
            return Client(connect(url), namespace, **client_options)

        self.client: Client = self._run(make())

    @classmethod
    def from_url(cls, url: str, namespace: str = "tqflow", **client_options: Any) -> SyncClient:
        return cls(url, namespace, **client_options)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        """Every coroutine method of `Client` (enqueue, enqueue_many, result, job, cancel, cancel_run,
        reprioritize, start_run, wait, run_info, deploy, replay, dead_letters …), called synchronously."""
        method = getattr(self.client, name)
        if not callable(method):
            return method  # type: ignore[no-any-return]

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if isinstance(result, Awaitable):
                return self._run(_awaited(result))
            return result

        return call

    def close(self) -> None:
        if self._loop.is_running():
            self._run(self.client.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _awaited(value: Awaitable[T]) -> T:
    return await value
