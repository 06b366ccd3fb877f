"""A TCP proxy on 127.0.0.1 that a test controls: pass bytes, stall them (a network partition: the
connections stay open and nothing arrives, like dropped packets), delay every chunk (latency), or lose
the reply of a request: `cut_replies(marker, n)` passes the next `n` requests containing `marker` to
Redis, drops what Redis answers and closes that connection, as a network that dies after the request
was sent (the client cannot tell whether it landed)."""

from __future__ import annotations

import asyncio
import contextlib


class Proxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.stalled = False
        self.latency = 0.0
        self.port = 0
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.cut_markers: tuple[bytes, ...] = ()
        self.cuts_left = 0
        self.cut = 0  # requests whose reply was dropped

    def cut_replies(self, markers: tuple[bytes, ...], count: int = 1) -> None:
        """Cut the next `count` requests that contain any of `markers`."""
        self.cut_markers, self.cuts_left = markers, count

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        try:
            muted: list[bool] = [False]  # this connection's replies are dropped (its request was cut)
            await asyncio.gather(
                self._pump(reader, up_writer, muted, upstream=True), self._pump(up_reader, writer, muted)
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()
            self.tasks.discard(task)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        muted: list[bool],
        upstream: bool = False,
    ) -> None:
        while data := await reader.read(65536):
            while self.stalled:
                await asyncio.sleep(0.02)
            if self.latency:
                await asyncio.sleep(self.latency)
            cutting = upstream and self.cuts_left > 0 and any(m in data for m in self.cut_markers)
            if cutting:
                self.cuts_left -= 1
                muted[0] = True  # before the request goes: its reply must not reach the client
            if muted[0] and not upstream:
                continue
            writer.write(data)
            await writer.drain()
            if cutting:
                await asyncio.sleep(0.2)  # Redis runs the request and answers; the answer is dropped
                self.cut += 1
                raise ConnectionResetError("reply cut")
        writer.close()
