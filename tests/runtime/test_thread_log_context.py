"""A task run in a thread logs with its job's context (job, run, task, attempt), as an async task does:
`run_in_executor` does not carry context variables, so the executor copies them itself."""

from __future__ import annotations

from typing import Any

import structlog

from tqflow.runtime.client import Client
from tqflow.runtime.logging import JobLogHooks, add_job_context
from tqflow.runtime.task import task

from helpers import WorkerFactory


@task(name="tests.logs_in_a_thread", executor="thread")
def logs_in_a_thread(tag: str) -> str:
    structlog.get_logger("tests").info("from the task", tag=tag)
    return tag


@task(name="tests.logs_in_the_loop")
async def logs_in_the_loop(tag: str) -> str:
    structlog.get_logger("tests").info("from the task", tag=tag)
    return tag


async def test_a_thread_task_logs_with_its_jobs_context(client: Client, start_worker: WorkerFactory) -> None:
    lines: list[dict[str, Any]] = []

    def keep(_logger: Any, _method: str, event: Any) -> Any:
        lines.append(dict(event))
        raise structlog.DropEvent

    saved = structlog.get_config()
    structlog.configure(processors=[add_job_context, keep])
    try:
        tasks = {t.name: t for t in (logs_in_a_thread, logs_in_the_loop)}
        await start_worker(tasks, hooks=[JobLogHooks()])
        ids = {
            "thread": await client.enqueue(logs_in_a_thread, tag="thread"),
            "loop": await client.enqueue(logs_in_the_loop, tag="loop"),
        }
        for job_id in ids.values():
            await client.result(job_id, timeout=10)
    finally:
        structlog.reset_defaults()
        structlog.configure(**saved)
    own = {line["tag"]: line for line in lines if line.get("event") == "from the task"}
    for tag, job_id in ids.items():
        assert own[tag].get("job") == job_id, own[tag]
        assert own[tag].get("attempt") == 1
