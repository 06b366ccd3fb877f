"""A job that succeeds on a retry shows its result and no error, by every reader (the client, GET /jobs/{id},
`tqc jobs show` and its --json), while its attempt history keeps the earlier attempt's error."""

from __future__ import annotations

import asyncio
import json

import httpx

from tqflow.runtime.attempts import AttemptRecorder
from tqflow.runtime.client import Client
from tqflow.runtime.registry import load_tasks

from cli_runner import tqc_on
from helpers import FLOWS, WorkerFactory

TASKS = load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above


async def test_a_success_on_a_retry_shows_its_result_not_the_old_error(
    client: Client, redis_url: str, namespace: str, start_worker: WorkerFactory, api: httpx.AsyncClient
) -> None:
    recorder = AttemptRecorder(client.redis, namespace)  # the attempt history, as `tqrun worker` keeps it
    await start_worker(TASKS, hooks=[recorder])
    job_id = await client.enqueue(jt.asks_for_retry, key=f"{namespace}-shown")
    assert await client.result(job_id, timeout=10) == 2
    # the first attempt's error is still in the hash: readers must not show it as the job's
    assert await client.redis.hget(client.keys.job(job_id), "error")

    info = await client.job(job_id)
    assert (info.state, info.error, info.result) == ("succeeded", None, 2)

    for _ in range(200):  # the worker's hooks see the end just after it lands; the history is batched
        await recorder.flush()
        view = (await api.get(f"/jobs/{job_id}")).json()
        if len(view["attempts"]) >= 2:
            break
        await asyncio.sleep(0.025)
    assert (view["state"], view["error"], view["result"]) == ("succeeded", None, 2)
    assert [a["outcome"] for a in view["attempts"]] == ["retry", "succeeded"], view["attempts"]

    shown = await asyncio.to_thread(tqc_on, redis_url, namespace, "jobs", "show", job_id)
    assert shown.returncode == 0, shown.stderr
    assert "result    2" in shown.stdout and "error" not in shown.stdout, shown.stdout
    as_json = await asyncio.to_thread(tqc_on, redis_url, namespace, "jobs", "show", job_id, "--json")
    assert json.loads(as_json.stdout)["error"] is None
