"""The dashboard in a real headless Chromium, driven by playwright; screenshots go to test-artifacts/."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from tqflow.compiler import compile_file
from tqflow.runtime.attempts import AttemptRecorder
from tqflow.runtime.client import Client
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.task import Task

from .conftest import OBS_FLOWS, serve_api, watch_plan
from helpers import WorkerFactory

CHROMIUM = "/usr/bin/chromium"
TASKS = load_tasks(["policy_tasks"], [OBS_FLOWS])
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _need_chromium() -> None:
    if os.path.exists(CHROMIUM) or shutil.which("chromium"):
        return
    if os.environ.get("CI"):
        pytest.fail("chromium is missing in CI: .ci/run installs it (apt-get install -y chromium)")
    pytest.skip("chromium is not installed (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def namespace() -> str:
    """One namespace (and one API server) for this module's tests; each test's keys are still removed."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def api_server(redis_url: str, namespace: str) -> Iterator[str]:
    yield from serve_api(redis_url, namespace)


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    _need_chromium()
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            tab = await browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            tab.on("pageerror", lambda err: errors.append(str(err)))
            yield tab
            assert not errors, errors
        finally:
            await browser.close()


async def test_a_run_graph_updates_live_and_shows_attempts_errors_and_dlq(
    page: Any,
    api_server: str,
    client: Client,
    redis: Redis,
    namespace: str,
    start_worker: WorkerFactory,
    obs_tasks: dict[str, Task[Any, Any]],
) -> None:
    await client.deploy(watch_plan())
    run_id = await client.start_run("watch", {"ms": "1500"})
    await page.goto(f"{api_server}/#/run/{run_id}")
    # Before any worker: the root is queued, the rest wait; the graph has every job and edge.
    await page.wait_for_selector('svg.graph g.node[data-job="first"][data-state="queued"]')
    assert await page.locator("svg.graph g.node").count() == 4
    assert await page.locator("svg.graph path.edge").count() == 4
    await page.screenshot(path=str(ARTIFACTS / "dashboard-run-queued.png"), full_page=True)

    recorder = AttemptRecorder(redis, namespace)
    await start_worker(obs_tasks, hooks=[recorder], queues=["observe"], concurrency=4)
    await page.wait_for_selector('svg.graph g.node[data-job="first"][data-state="running"]', timeout=10_000)
    colour = await page.locator('g.node[data-job="first"] rect').get_attribute("fill")
    assert colour == "#2f6fdb"  # running is blue
    await page.screenshot(path=str(ARTIFACTS / "dashboard-run-running.png"), full_page=True)
    await page.wait_for_selector('g.node[data-job="joined"][data-state="succeeded"]', timeout=15_000)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-run-succeeded.png"), full_page=True)

    await page.click('g.node[data-job="left"]')
    await page.wait_for_selector('[data-job-detail$=".left"] table.attempts td:has-text("succeeded")')

    bad = await client.start_run("broken")
    assert (await client.wait(bad, 20)).state == "failed"
    await recorder.flush()
    await page.goto(f"{api_server}/#/run/{bad}?job=bad")
    await page.wait_for_selector('g.node[data-job="bad"][data-state="dead"]')
    await page.wait_for_selector("pre.traceback")
    assert "RuntimeError: it broke" in await page.locator("pre.traceback").inner_text()
    assert await page.locator("table.attempts tbody tr").count() == 2
    await page.screenshot(path=str(ARTIFACTS / "dashboard-job-error.png"), full_page=True)

    await page.goto(f"{api_server}/#/dlq")
    await page.wait_for_selector(f'tr[data-dead="{bad}.bad"]')
    await page.screenshot(path=str(ARTIFACTS / "dashboard-dlq.png"), full_page=True)
    inspector = Inspector(redis, namespace)
    dead_since = (await inspector.job(f"{bad}.bad")).finished
    replays: list[str] = []
    page.on("request", lambda request: replays.append(request.url) if "/replay" in request.url else None)
    await page.click(f'tr[data-dead="{bad}.bad"] button[data-action="replay"]')
    # a run's job: the replay resumes its run, and the notice says so
    await page.wait_for_selector(f'#notice:has-text("replay: resumed for {bad}.bad")')
    # the button names the dead-lettering it showed, so a second click or operator replays it once
    assert len(replays) == 1 and f"seen={dead_since}" in replays[0]
    for _ in range(200):  # it runs again (and fails again): two more attempts in its history
        await recorder.flush()
        if len((await inspector.job(f"{bad}.bad")).attempts) == 4:
            break
        await asyncio.sleep(0.05)
    assert len((await inspector.job(f"{bad}.bad")).attempts) == 4


async def test_flows_queues_workers_and_runs_pages(
    page: Any,
    api_server: str,
    client: Client,
    start_worker: WorkerFactory,
    obs_tasks: dict[str, Task[Any, Any]],
) -> None:
    await client.deploy(watch_plan())
    runs = [await client.start_run("watch", {"ms": "50"}) for _ in range(3)]
    await page.goto(f"{api_server}/#/queues")
    await page.wait_for_selector('tr[data-queue="observe"][data-priority="normal"] td.num:text-is("3")')
    await page.screenshot(path=str(ARTIFACTS / "dashboard-queues.png"), full_page=True)

    extra = await client.start_run("watch", {"ms": "50"})
    await page.goto(f"{api_server}/#/run/{extra}")
    await page.click('button[data-action="cancel-run"]')
    await page.wait_for_selector('h1 .state:text-is("cancelled")')
    await page.screenshot(path=str(ARTIFACTS / "dashboard-run-cancelled.png"), full_page=True)

    await page.goto(f"{api_server}/#/flows")
    await page.wait_for_selector('#flows a[href="#/flow/watch"]')
    await page.click('#flows a[href="#/flow/watch"]')
    await page.wait_for_selector('svg.graph g.node[data-job="joined"]')
    await page.screenshot(path=str(ARTIFACTS / "dashboard-flow.png"), full_page=True)

    await start_worker(obs_tasks, queues=["observe"], concurrency=4)
    for run_id in runs:
        await client.wait(run_id, 20)
    await page.goto(f"{api_server}/#/runs")
    for run_id in runs:
        await page.wait_for_selector(f'tr[data-run="{run_id}"] .state:text-is("succeeded")')
    spread = await client.start_run("spread")
    await client.wait(spread, 20)
    await page.goto(f"{api_server}/#/run/{spread}?job=each")
    await page.wait_for_selector('g.node[data-job="each"] text:has-text("succeeded 3/3")')
    await page.wait_for_selector('p.children a[href$=".each.2"]')
    await page.goto(f"{api_server}/#/workers")
    await page.wait_for_selector("#workers td:text-is('observe')")
    await page.screenshot(path=str(ARTIFACTS / "dashboard-workers.png"), full_page=True)


async def test_with_a_token_the_dashboard_asks_for_it_once(page: Any, redis_url: str, client: Client) -> None:
    await client.deploy(watch_plan())
    server = serve_api(redis_url, client.keys.namespace, "--token", "s3cret")
    base = next(server)
    try:
        await page.goto(f"{base}/#/flows")
        await page.wait_for_selector("#token-form:not([hidden])")
        await page.fill("#token", "s3cret")
        await page.click("#token-form button")
        await page.wait_for_selector('#flows a[href="#/flow/watch"]')
        await page.reload()  # kept in the browser's local storage
        await page.wait_for_selector('#flows a[href="#/flow/watch"]')
    finally:
        server.close()


async def test_job_details_search_queues_named_dlqs_start_a_run_and_offline_docs(
    page: Any,
    api_server: str,
    client: Client,
    redis: Redis,
    namespace: str,
    start_worker: WorkerFactory,
    obs_tasks: dict[str, Task[Any, Any]],
) -> None:
    await client.deploy(watch_plan())
    # offline /docs: Swagger UI's files come from this server, not a CDN (the page makes no other request)
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(api_server) else None)
    await page.goto(f"{api_server}/docs")
    await page.wait_for_selector(".swagger-ui .opblock-summary-path", timeout=20_000)
    assert await page.locator('.opblock-summary-path[data-path="/jobs"]').count() >= 1
    await page.screenshot(path=str(ARTIFACTS / "dashboard-docs.png"), full_page=True)
    assert outside == [], outside

    # a queue's own job list, with a job's arguments and policy
    policy = TASKS["pol.flaky"]
    queued = await client.enqueue(policy, key="dash", queue="dashq")
    after = await client.enqueue(policy, key="after", queue="dashq", depends_on=[queued])  # waits for it
    await page.goto(f"{api_server}/#/queues")
    await page.click('a[href="#/queue/dashq"]')
    await page.wait_for_selector(f'table[data-list="queued"] tr[data-job-row="{queued}"]')
    await page.wait_for_selector(f'table[data-list="waiting"] tr[data-job-row="{after}"]')
    await page.screenshot(path=str(ARTIFACTS / "dashboard-queue-jobs.png"), full_page=True)
    await page.click(f'tr[data-job-row="{queued}"] a')
    await page.wait_for_selector("pre.args")
    assert '"key": "dash"' in await page.locator("pre.args").inner_text()
    assert "retry fixed, 3 attempts" in await page.locator("p.policy .retry").inner_text()
    await client.cancel(queued)

    # start a run from the flow page; its params are searchable; the duration column fills in
    await start_worker({**obs_tasks, **TASKS}, queues=["observe", "pol"], concurrency=4)
    await page.goto(f"{api_server}/#/flow/watch")
    await page.fill('#start-run textarea[name="params"]', '{"ms": 7}')
    await page.click('#start-run button[type="submit"]')
    await page.wait_for_selector('h1 .state:text-is("succeeded")', timeout=20_000)
    run_id = page.url.rsplit("/", 1)[1]
    await page.click('g.node[data-job="joined"]')
    await page.wait_for_selector('pre.result:has-text("14")')
    await page.screenshot(path=str(ARTIFACTS / "dashboard-job-result.png"), full_page=True)
    other = await client.start_run("watch", {"ms": 3})
    await client.wait(other, 20)
    await page.goto(f"{api_server}/#/runs")
    await page.fill('#run-search input[name="q"]', '"ms": 7')
    await page.click('#run-search button[type="submit"]')
    # the unfiltered list may still be on the page: wait for the search's own render, which drops `other`
    await page.wait_for_selector(f'tr[data-run="{other}"]', state="detached")
    await page.wait_for_selector(f'tr[data-run="{run_id}"] td.duration:not(:empty)')
    assert await page.locator(f'tr[data-run="{other}"]').count() == 0
    await page.screenshot(path=str(ARTIFACTS / "dashboard-runs-search.png"), full_page=True)
    await page.fill("#search-id", run_id)
    await page.press("#search-id", "Enter")
    await page.wait_for_selector(f'h1:has-text("Run {run_id}")')

    # fan-out item states in the job's panel
    spread = await client.start_run("spread")
    await client.wait(spread, 20)
    await page.goto(f"{api_server}/#/run/{spread}?job=each")
    await page.wait_for_selector(f'table.items tr[data-item="{spread}.each.2"] .state:text-is("succeeded")')
    await page.screenshot(path=str(ARTIFACTS / "dashboard-fan-out-items.png"), full_page=True)

    # a named dead-letter queue is listed and its jobs replay from it
    dead = await client.enqueue("pol.once", key=f"{namespace}-dash")
    await client.waiter.wait(dead, 20)
    await page.goto(f"{api_server}/#/dlq")
    await page.click('#dlq-names a[data-dlq="pol-dead"]')
    await page.wait_for_selector(f'tr[data-dead="{dead}"]')
    await page.screenshot(path=str(ARTIFACTS / "dashboard-named-dlq.png"), full_page=True)
    await page.click(f'tr[data-dead="{dead}"] button[data-action="replay"]')
    await page.wait_for_selector(f'#notice:has-text("replay: done for {dead}")')
    assert await client.result(dead, timeout=20) == f"{namespace}-dash"
    for shot in ("docs", "queue-jobs", "job-result", "runs-search", "fan-out-items", "named-dlq"):
        data = (ARTIFACTS / f"dashboard-{shot}.png").read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, shot  # a real page, not a blank one


async def test_signal_forms_approve_reject_and_show_a_refused_payload(
    page: Any, api_server: str, client: Client, redis: Redis, start_worker: WorkerFactory
) -> None:
    example = Path(__file__).parents[2] / "examples" / "approval"
    compiled = compile_file(example / "approval.tqflow")
    assert compiled.plan is not None, [d.message for d in compiled.diagnostics]
    await client.deploy(compiled.plan)
    await start_worker(load_tasks(compiled.plan.flows["expense"].modules, [example]))
    approved = await client.start_run("expense", {"claim": "dash-yes", "amount": 30})
    rejected = await client.start_run("expense", {"claim": "dash-no"})
    for run_id in (approved, rejected):
        await awaiting(redis, client, run_id)

    # the Signals page lists both; a payload that does not fit is refused with its reason, and nothing is sent
    await page.goto(f"{api_server}/#/signals")
    form = f'form.signal-form[data-run="{approved}"][data-name="approve"]'
    await page.wait_for_selector(f'form.signal-form[data-run="{rejected}"]')
    assert await page.locator(form).get_attribute("data-approvable") == "field"
    await page.fill(f'{form} textarea[name="payload"]', '{"approved": "yes", "by": "ana"}')
    await page.click(f'{form} button:text-is("Send")')
    await page.wait_for_selector('#notice.error:has-text("signal approve refused")')
    assert "payload.approved must be true or false" in await page.locator("#notice").inner_text()
    assert await redis.hget(client.keys.job(f"{approved}.approve"), "state") == "awaiting"
    await page.screenshot(path=str(ARTIFACTS / "dashboard-signals.png"), full_page=True)

    # Approve fills in the decision; the rest of the payload comes from the form
    await page.fill(f'{form} textarea[name="payload"]', '{"approved": false, "by": "ana"}')
    await page.click(f'{form} button[data-approve="true"]')
    await page.wait_for_selector('#notice:not(.error):has-text("signal approve: delivered")')
    done = await client.wait(approved, 30)
    assert done.state == "succeeded" and done.outputs == {"approved": True, "by": "ana"}
    assert done.jobs["pay"].result == "paid 30 EUR for dash-yes, approved by ana"

    # Reject from the run's own page, in its "Waiting for signals" section
    await page.goto(f"{api_server}/#/run/{rejected}")
    form = f'form.signal-form[data-run="{rejected}"]'
    await page.wait_for_selector(f'h2:text-is("Waiting for signals") ~ {form}')
    payload = '{"approved": true, "by": "bo", "comment": "no receipt"}'
    await page.fill(f'{form} textarea[name="payload"]', payload)
    await page.click(f'{form} button[data-approve="false"]')
    await page.wait_for_selector('#notice:has-text("signal approve: delivered")')
    done = await client.wait(rejected, 30)
    assert done.state == "succeeded" and done.outputs == {"approved": False, "by": "bo"}
    assert done.jobs["answer"].result == "dash-no rejected by bo: no receipt"
    await page.goto(f"{api_server}/#/signals")
    await page.wait_for_selector('p.muted:text-is("No signal job is waiting.")')


async def awaiting(redis: Redis, client: Client, run_id: str) -> None:
    """Until the run's `approve` job waits for its signal (its upstream `review` ran)."""
    for _ in range(400):
        if await redis.hget(client.keys.job(f"{run_id}.approve"), "state") == "awaiting":
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{run_id}.approve never awaited its signal")
