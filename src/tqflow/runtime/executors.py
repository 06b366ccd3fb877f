"""Where a task's function runs: on the event loop (async), in a thread, or in a process pool.

Every call can be stopped (cancellation, timeout): an async task is cancelled; a thread gets an
exception raised at its next bytecode boundary (`JobInterrupted`: the next safe point Python offers);
a pool process is killed and replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import importlib
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from tqflow.errors import TaskNotFound, WorkerError
from tqflow.runtime.task import Task


class JobInterrupted(BaseException):
    """Raised inside a thread running a job that was cancelled or timed out."""


class Running:
    """One call in progress, and how to stop it."""

    def __init__(self) -> None:
        self.thread_id: int | None = None
        self.stop_process: Callable[[], None] | None = None
        self.future: asyncio.Future[Any] | None = None
        self.handing_back = False  # a stopping worker interrupts the thread to hand the job back

    def interrupt_thread(self) -> None:
        """Raise JobInterrupted in the job's thread at its next bytecode (never inside a C call)."""
        if self.thread_id is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self.thread_id), ctypes.py_object(JobInterrupted)
            )

    def keep_thread(self) -> None:
        """Take back an interrupt that has not landed yet (the thread is inside a C call): it runs on."""
        self.handing_back = False
        if self.thread_id is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id), None)

    def interrupt(self) -> None:
        self.interrupt_thread()
        if self.stop_process is not None:
            self.stop_process()
        if self.future is not None:
            self.future.cancel()


class Executors:
    def __init__(self, threads: int, processes: int = 0) -> None:
        self.threads = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="tqflow-job")
        self.pool = ProcessPool(processes) if processes > 0 else None

    def kind(self, task: Task[Any, Any]) -> str:
        if task.options.executor == "process":
            return "process"
        if task.is_async:
            return "async"
        return "thread"

    async def call(self, task: Task[Any, Any], kwargs: dict[str, Any], running: Running) -> Any:
        kind = self.kind(task)
        if kind == "async":
            return await task.fn(**kwargs)
        if kind == "process":
            if self.pool is None:
                self.pool = ProcessPool(1)
            return await self.pool.call(task, kwargs, running)
        loop = asyncio.get_running_loop()
        done = threading.Event()

        def in_thread() -> Any:
            running.thread_id = threading.get_ident()
            try:
                return task.fn(**kwargs)
            finally:
                running.thread_id = None
                done.set()

        # run_in_executor does not carry context variables (asyncio.to_thread does): the job's log
        # context (runtime/logging.py) must reach the lines the task logs in its thread
        future = loop.run_in_executor(self.threads, contextvars.copy_context().run, in_thread)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            running.interrupt()  # the thread stops at its next bytecode; its result is dropped
            raise

    def shutdown(self) -> None:
        self.threads.shutdown(wait=False, cancel_futures=True)
        if self.pool is not None:
            self.pool.shutdown()


def _child_main(conn: Connection) -> None:
    """A pool process: import the task's module, run the function, send back ("ok", value) or ("err", …)."""
    import traceback

    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        module, name, kwargs = message
        try:
            found = _find_task(importlib.import_module(module), name)
            conn.send(("ok", found.fn(**kwargs)))
        except BaseException as err:  # report everything to the parent, which decides
            qualified = f"{type(err).__module__}.{type(err).__qualname__}"
            mro = [f"{c.__module__}.{c.__qualname__}" for c in type(err).__mro__]
            conn.send(("err", (qualified, str(err), "".join(traceback.format_exception(err)), mro)))


def _find_task(module: Any, name: str) -> Task[Any, Any]:
    for value in vars(module).values():
        if isinstance(value, Task) and value.name == name:
            return value
    raise TaskNotFound(f"module {module.__name__} has no task {name!r}")


class ProcessFailure(WorkerError):
    """The task raised in a pool process; the original class is named by `qualified_name`."""

    def __init__(self, qualified_name: str, message: str, tb: str, mro: list[str]) -> None:
        super().__init__(message)
        self.qualified_name, self.remote_traceback, self.mro = qualified_name, tb, mro


class PoolProcessDied(WorkerError, RuntimeError):
    """The pool process running a task died (a crash, an OOM kill, os._exit): the attempt fails with it."""


class _Slot:
    def __init__(self, context: Any) -> None:
        self.conn, child = multiprocessing.Pipe()
        self.process: BaseProcess = context.Process(target=_child_main, args=(child,), daemon=True)
        self.process.start()
        child.close()


class ProcessPool:
    """A fixed number of spawned processes, one job each at a time; a stopped job's process is replaced."""

    def __init__(self, size: int) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.size = size
        self.idle: asyncio.Queue[_Slot] | None = None

    async def call(self, task: Task[Any, Any], kwargs: dict[str, Any], running: Running) -> Any:
        if self.idle is None:
            self.idle = asyncio.Queue()
            for _ in range(self.size):
                self.idle.put_nowait(await asyncio.to_thread(_Slot, self.context))
        slot = await self.idle.get()
        killed = False

        def stop() -> None:
            nonlocal killed
            killed = True
            slot.process.kill()

        running.stop_process = stop
        try:
            slot.conn.send((task.fn.__module__, task.name, kwargs))
            status, value = await asyncio.to_thread(slot.conn.recv)
        except (EOFError, OSError, asyncio.CancelledError) as err:
            # Decide before stop() sets `killed`: a process that died by itself (segfault, os._exit) is a
            # failed attempt, not a cancellation (F7: it left the job running forever).
            stopped = killed or isinstance(err, asyncio.CancelledError)
            stop()
            await asyncio.to_thread(slot.process.join, 5)
            self.idle.put_nowait(await asyncio.to_thread(_Slot, self.context))
            if stopped:
                raise asyncio.CancelledError() from None
            code = slot.process.exitcode
            raise PoolProcessDied(
                f"the pool process running the task died (task `{task.name}`, exit code {code})"
            ) from None
        finally:
            running.stop_process = None
        self.idle.put_nowait(slot)
        if status == "ok":
            return value
        raise ProcessFailure(*value)

    def shutdown(self) -> None:
        if self.idle is None:
            return
        while not self.idle.empty():
            slot = self.idle.get_nowait()
            with contextlib.suppress(Exception):
                slot.conn.send(None)
            slot.process.join(1)
            if slot.process.is_alive():
                slot.process.kill()
