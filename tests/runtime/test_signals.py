"""Signal jobs against a real Redis: `job approve = signal Approval { timeout D }` waits, holding no worker,
until a payload of its type is sent (Client.signal, SyncClient.signal, POST /api/runs/{id}/signals/{name},
`tqc signal`); a payload that does not fit is refused and the job keeps waiting; a payload sent before the
run reaches the job is kept and delivered when it does; on timeout the job fails and `after X.failed` runs.
Uses the approval example (examples/approval)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tqflow.compiler import compile_file
from tqflow.runtime.api.app import create_app
from tqflow.runtime.api.settings import ApiSettings
from tqflow.runtime.client import Client
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.runs import RunInfo
from tqflow.runtime.signals import SignalNotFound, SignalPayloadError, SignalRefused
from tqflow.runtime.sync import SyncClient

from cli_runner import tqc
from helpers import FLOWS, WorkerFactory

EXAMPLE = Path(__file__).parents[2] / "examples" / "approval"
YES = {"approved": True, "by": "ana"}


async def deploy(client: Client, folder: Path = EXAMPLE) -> dict[str, Any]:
    result = compile_file(folder / "approval.tqflow")
    assert result.plan is not None, [d.message for d in result.diagnostics]
    await client.deploy(result.plan)
    return load_tasks(result.plan.flows["expense"].modules, [folder])


async def job_state(redis: Redis, client: Client, run_id: str, name: str) -> str | None:
    return await redis.hget(client.keys.job(f"{run_id}.{name}"), "state")


async def until_state(redis: Redis, client: Client, run_id: str, name: str, wanted: str) -> None:
    for _ in range(400):
        if await job_state(redis, client, run_id, name) == wanted:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{name} is {await job_state(redis, client, run_id, name)}, not {wanted}")


async def finished(client: Client, run_id: str) -> RunInfo:
    info = await client.wait(run_id, 30)
    assert info.finished, info.jobs
    return info


async def test_an_approval_is_delivered_and_typed_downstream(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    tasks = await deploy(client)
    await start_worker({**tasks, **load_tasks(["job_tasks"], [FLOWS])}, concurrency=1)
    run_id = await client.start_run("expense", {"claim": "c-7", "amount": 80})
    await until_state(redis, client, run_id, "approve", "awaiting")
    # the wait holds no worker slot: the one slot of the one worker runs other jobs meanwhile
    assert await client.result(await client.enqueue("job_tasks.add", x=2), timeout=10) == 3
    assert await redis.zscore(client.keys.awaiting, f"{run_id}.approve") is not None  # where Keys says
    [waiting] = await client.waiting_signals()
    assert (waiting.run_id, waiting.name, waiting.type) == (run_id, "approve", "Approval")
    assert waiting.timeout_at_ms is not None and waiting.timeout_at_ms - waiting.since_ms == 2 * 86_400_000
    assert waiting.schema["required"] == ["approved", "by"]
    sent = await client.signal(run_id, "approve", {**YES, "comment": "fine"})
    assert sent.status == "delivered"
    info = await finished(client, run_id)
    assert info.state == "succeeded"
    assert info.outputs == {"approved": True, "by": "ana"}
    # `pay` received an Approval built from the payload (its `.by` attribute, not a dict's key)
    assert info.jobs["pay"].result == "paid 80 EUR for c-7, approved by ana"
    assert info.jobs["answer"].state == "skipped" and info.jobs["escalate"].state == "skipped"
    assert await client.waiting_signals() == []


async def test_a_rejection_takes_the_other_path(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    await start_worker(await deploy(client))
    run_id = await client.start_run("expense", {"claim": "c-8"})
    await until_state(redis, client, run_id, "approve", "awaiting")
    await client.signal(run_id, "approve", {"approved": False, "by": "bo", "comment": "no receipt"})
    info = await finished(client, run_id)
    assert info.state == "succeeded" and info.outputs == {"approved": False, "by": "bo"}
    assert info.jobs["answer"].result == "c-8 rejected by bo: no receipt"
    assert info.jobs["pay"].state == "skipped"


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({"approved": "yes", "by": "ana"}, "payload.approved must be true or false, got a string"),
        ({"approved": True}, "payload.by is missing (Str)"),
        (
            {"aproved": True, "by": "ana"},
            "payload has no field `aproved` (Approval has: approved, by, comment)",
        ),
        ([True], "payload must be an object (Approval), got a list"),
        (None, "payload is required (got null)"),
        ({"approved": 1, "by": "ana"}, "payload.approved must be true or false, got an integer 1"),
    ],
)
async def test_a_payload_that_does_not_fit_is_refused_and_the_job_keeps_waiting(
    client: Client, redis: Redis, start_worker: WorkerFactory, payload: Any, says: str
) -> None:
    await start_worker(await deploy(client))
    run_id = await client.start_run("expense")
    await until_state(redis, client, run_id, "approve", "awaiting")
    with pytest.raises(SignalPayloadError) as refused:
        await client.signal(run_id, "approve", payload)
    assert says in str(refused.value)
    assert await job_state(redis, client, run_id, "approve") == "awaiting"
    assert (await client.signal(run_id, "approve", YES)).status == "delivered"
    assert (await finished(client, run_id)).state == "succeeded"


async def test_a_signal_sent_before_the_job_is_reached_is_kept_and_delivered(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    tasks = await deploy(client)
    run_id = await client.start_run("expense", {"claim": "early"})  # no worker: `review` has not run
    assert await job_state(redis, client, run_id, "approve") == "waiting"
    assert (await client.signal(run_id, "approve", YES)).status == "kept"
    with pytest.raises(SignalRefused, match="was sent already"):
        await client.signal(run_id, "approve", {"approved": False, "by": "eve"})  # one payload a job
    await start_worker(tasks)
    info = await finished(client, run_id)
    assert info.state == "succeeded" and info.outputs == {"approved": True, "by": "ana"}
    assert await redis.exists(client.keys.run_signals(run_id)) == 0  # delivered, not kept any more


async def test_signals_that_cannot_be_taken_say_why(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    await start_worker(await deploy(client))
    run_id = await client.start_run("expense")
    with pytest.raises(SignalNotFound, match="no signal job `review`; its signal jobs: approve"):
        await client.signal(run_id, "review", YES)  # a task job
    with pytest.raises(SignalNotFound, match="no signal job `nope`"):
        await client.signal(run_id, "nope", YES)
    with pytest.raises(LookupError, match="no run nosuchrun"):
        await client.signal("nosuchrun", "approve", YES)
    await until_state(redis, client, run_id, "approve", "awaiting")
    await client.signal(run_id, "approve", YES)
    await finished(client, run_id)
    with pytest.raises(SignalRefused, match="has ended"):
        await client.signal(run_id, "approve", YES)


async def test_a_timeout_fails_the_job_runs_the_failed_path_and_resume_waits_again(
    client: Client, redis: Redis, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    shutil.copy(EXAMPLE / "expenses.py", tmp_path)
    text = (EXAMPLE / "approval.tqflow").read_text().replace("timeout 2d", "timeout 300ms")
    (tmp_path / "approval.tqflow").write_text(text)
    await start_worker(await deploy(client, tmp_path), max_promote_sleep=0.05)
    run_id = await client.start_run("expense", {"claim": "late"})
    info = await finished(client, run_id)
    assert info.state == "failed"
    approve = info.jobs["approve"]
    assert approve.state == "dead" and approve.error is not None
    assert (
        approve.error["type"] == "SignalTimeout" and "no signal approve arrived" in approve.error["message"]
    )
    assert info.jobs["escalate"].result == "late escalated: nobody decided in time"
    assert info.jobs["pay"].state == "skipped"
    assert [d.id for d in await client.dead_letters()] == []  # no task failed: nothing to replay
    with pytest.raises(SignalRefused, match="has ended"):
        await client.signal(run_id, "approve", YES)
    # resuming waits again (for 300 ms); a payload sent in time now succeeds the run
    assert (await client.resume(run_id)).rerun == 3  # approve, pay and answer; escalate succeeded
    await until_state(redis, client, run_id, "approve", "awaiting")
    await client.signal(run_id, "approve", YES)
    info = await finished(client, run_id)
    assert info.state == "succeeded" and info.outputs == {"approved": True, "by": "ana"}
    assert info.jobs["pay"].state == "succeeded" and info.jobs["answer"].state == "skipped"
    assert info.jobs["escalate"].state == "succeeded"  # from the first attempt, kept


async def test_cancelling_a_run_ends_its_waiting_signal_job(
    client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    await start_worker(await deploy(client))
    run_id = await client.start_run("expense")
    await until_state(redis, client, run_id, "approve", "awaiting")
    assert await client.cancel_run(run_id)
    info = await finished(client, run_id)
    assert info.state == "cancelled" and info.jobs["approve"].state == "cancelled"
    assert await client.waiting_signals() == []
    assert await redis.zscore(client.keys.delayed, f"{run_id}.approve") is None  # its timeout is gone too


async def test_the_sync_client_signals(
    client: Client, redis: Redis, redis_url: str, namespace: str, start_worker: WorkerFactory
) -> None:
    await start_worker(await deploy(client))
    run_id = await client.start_run("expense")
    await until_state(redis, client, run_id, "approve", "awaiting")

    def send() -> tuple[list[str], str]:
        with SyncClient.from_url(redis_url, namespace=namespace) as sync:
            names = [w.name for w in sync.waiting_signals(run_id)]
            return names, sync.signal(run_id, "approve", YES).status

    assert await asyncio.to_thread(send) == (["approve"], "delivered")
    assert (await finished(client, run_id)).state == "succeeded"


async def test_signals_over_the_api(
    client: Client, redis: Redis, redis_url: str, namespace: str, start_worker: WorkerFactory
) -> None:
    await start_worker(await deploy(client))
    run_id = await client.start_run("expense")
    await until_state(redis, client, run_id, "approve", "awaiting")
    app = create_app(ApiSettings(redis_url=redis_url, namespace=namespace))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
    ):
        [listed] = (await http.get("/api/signals")).json()
        assert (listed["run"], listed["name"], listed["type"]) == (run_id, "approve", "Approval")
        assert listed["schema"]["fields"]["approved"] == {"name": "Bool"}
        assert [s["name"] for s in (await http.get(f"/api/runs/{run_id}/signals")).json()] == ["approve"]
        url = f"/api/runs/{run_id}/signals/approve"
        wrong = await http.post(url, json={"approved": "yes", "by": "ana"})
        assert wrong.status_code == 422 and "payload.approved must be true or false" in wrong.json()["detail"]
        assert (await http.post(f"/api/runs/{run_id}/signals/nope", json=YES)).status_code == 404
        assert (await http.post("/api/runs/nosuchrun/signals/approve", json=YES)).status_code == 404
        assert (await http.post(f"/api/runs/{run_id}/signals/bad-name!", json=YES)).status_code == 422
        sent = await http.post(url, json=YES)
        assert sent.status_code == 200 and sent.json() == {
            "run": run_id,
            "name": "approve",
            "status": "delivered",
        }
        assert (await finished(client, run_id)).state == "succeeded"
        again = await http.post(url, json=YES)
        assert again.status_code == 409 and "has ended" in again.json()["detail"]
        assert (await http.get("/api/signals")).json() == []


async def test_signals_from_the_command_line(
    client: Client, redis: Redis, redis_url: str, namespace: str, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    await start_worker(await deploy(client))
    run_id = await client.start_run("expense")
    await until_state(redis, client, run_id, "approve", "awaiting")
    where = ("--redis", redis_url, "--namespace", namespace)
    listed = await asyncio.to_thread(tqc, "signals", *where)
    assert listed.returncode == 0 and f"run {run_id}  expense.approve: Approval" in listed.stdout
    not_json = await asyncio.to_thread(tqc, "signal", run_id, "approve", "--data", "{approved: true}", *where)
    assert not_json.returncode == 2 and "--data is not JSON" in not_json.stderr
    wrong = await asyncio.to_thread(tqc, "signal", run_id, "approve", "--data", '{"approved": true}', *where)
    assert wrong.returncode == 2 and "payload.by is missing" in wrong.stderr
    missing = await asyncio.to_thread(tqc, "signal", "nosuchrun", "approve", "--data", "{}", *where)
    assert missing.returncode == 5 and "no run nosuchrun" in missing.stderr
    (tmp_path / "yes.json").write_text(json.dumps(YES))
    sent = await asyncio.to_thread(
        tqc, "signal", run_id, "approve", "--data", f"@{tmp_path / 'yes.json'}", *where
    )
    assert sent.returncode == 0 and sent.stdout.strip() == f"run {run_id}: signal approve delivered"
    assert (await finished(client, run_id)).state == "succeeded"
    assert (await asyncio.to_thread(tqc, "signals", "--json", *where)).stdout.strip() == "[]"
