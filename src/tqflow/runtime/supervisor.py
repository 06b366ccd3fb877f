"""Running workers as processes: `tqrun worker --processes N` starts N worker processes (spawned, each
with its own event loop and connections) and restarts any that dies; SIGTERM/SIGINT is passed on, and
each worker stops fetching and finishes what it holds."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from pathlib import Path

import structlog

from tqflow.runtime import eventloop
from tqflow.runtime.alerts import AlertSettings
from tqflow.runtime.connection import RedisUrlError, connect
from tqflow.runtime.logging import configure_logging
from tqflow.runtime.observability import for_worker
from tqflow.runtime.registry import TaskLoadError, load_tasks
from tqflow.runtime.store.payloads import PayloadSettings
from tqflow.runtime.worker import Worker, WorkerSettings

log = structlog.get_logger("tqflow.supervisor")
SIGNING_KEY_ENV = "TQFLOW_SIGNING_KEY"
IMPORT_ERROR = 7  # mirrors cli.exit_codes.IMPORT_ERROR (the runtime does not import the CLI)
CONNECT_ERROR = 4  # mirrors cli.exit_codes.CONNECT_ERROR


@dataclass(frozen=True)
class Observe:
    """What runs beside each worker process: metrics on `metrics_port + process index`, alerts."""

    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    alerts: AlertSettings | None = None


@dataclass(frozen=True)
class WorkerSpec:
    url: str
    namespace: str
    modules: list[str]
    folders: list[str]
    settings: WorkerSettings
    log_level: str | None = None
    observe: Observe = Observe()
    index: int = 0
    event_loop: str = "auto"  # auto (uvloop when installed), uvloop or asyncio: see runtime/eventloop.py


def payload_settings(
    codec: str, compress_over: int | None, environ: Mapping[str, str], compression: str | None = None
) -> PayloadSettings:
    key = environ.get(SIGNING_KEY_ENV)
    return PayloadSettings(
        codec=codec,
        compress_over=compress_over,
        signing_key=key.encode() if key else None,
        compression=compression,
    )


GC_THRESHOLDS = (50_000, 20, 100)  # a worker allocates a few short-lived objects per job: collect less often


def run_worker(spec: WorkerSpec) -> int:
    """One worker in this process, until SIGTERM or SIGINT. Returns an exit code."""
    try:
        tasks = load_tasks(spec.modules, [Path(f) for f in spec.folders])
    except TaskLoadError as err:
        print(f"error: {err}", file=sys.stderr)
        return IMPORT_ERROR
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        eventloop.run(_work(spec, tasks), spec.event_loop)
    except RedisUrlError as err:  # a plain URL into a cluster: one line, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return CONNECT_ERROR
    return 0


async def _work(spec: WorkerSpec, tasks: dict) -> None:  # type: ignore[type-arg]
    redis = connect(spec.url, namespace=spec.namespace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    seen = for_worker(
        redis,
        spec.namespace,
        spec.settings.concurrency,
        metrics_port_base=spec.observe.metrics_port,
        metrics_host=spec.observe.metrics_host,
        process_index=spec.index,
        alerts=spec.observe.alerts,
        tasks=list(tasks),
        history_ttl_s=max(1, (spec.settings.keep_history_ms or spec.settings.result_ttl_ms) // 1000),
    )
    try:
        worker = Worker(redis, tasks, spec.namespace, spec.settings, hooks=seen.hooks)
        await seen.run_beside(worker.run(stop), stop)
    finally:
        await redis.aclose()


def _child(spec: WorkerSpec, index: int) -> None:
    configure_logging(spec.log_level)
    settings = replace(spec.settings, name=f"{spec.settings.name}-{index}")
    sys.exit(run_worker(replace(spec, settings=settings, index=index)))


def supervise(spec: WorkerSpec, processes: int) -> int:
    """Start `processes` workers and keep them running until SIGTERM/SIGINT; then stop them all."""
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    children: dict[int, BaseProcess] = {}
    restarts: dict[int, float] = {}
    while not stopping:
        for index in range(processes):
            child = children.get(index)
            if child is not None and child.is_alive():
                continue
            if child is not None:
                if child.exitcode == IMPORT_ERROR:
                    stopping = True
                    break
                log.warning("worker process died; restarting", index=index, exitcode=child.exitcode)
                if time.monotonic() - restarts.get(index, 0) < 1:
                    time.sleep(1)  # do not spin on a worker that dies at once
            restarts[index] = time.monotonic()
            children[index] = context.Process(target=_child, args=(spec, index), daemon=False)
            children[index].start()
        time.sleep(0.2)
    for child in children.values():
        if child.is_alive() and child.pid is not None:
            os.kill(child.pid, signal.SIGTERM)
    for child in children.values():
        child.join(60)
        if child.is_alive():
            child.kill()
    return 0
