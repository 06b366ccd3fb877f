"""Alerts: dead-lettered jobs and failed runs to a webhook, a callback and a log line; claimed once across
monitors; a storm rate-limited into a summary; lost workers and old queues; routes from a TOML file."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from tqflow.runtime.alert_sinks import CallbackSink, LogSink, WebhookSink
from tqflow.runtime.alerts import AlertMonitor, AlertSettings, RateLimit, Route, load_alert_settings
from tqflow.runtime.client import Client
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.task import Task

from .conftest import watch_plan
from helpers import WorkerFactory


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


async def test_a_dead_letter_and_a_failed_run_alert_once_across_two_monitors(
    client: Client,
    redis: Redis,
    namespace: str,
    start_worker: WorkerFactory,
    obs_tasks: dict[str, Task[Any, Any]],
    webhook: tuple[str, list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, received = webhook
    called: list[dict[str, Any]] = []

    async def on_alert(payload: dict[str, Any]) -> None:
        called.append(payload)

    def settings() -> AlertSettings:
        return AlertSettings(
            routes=[
                Route(
                    WebhookSink(url), kinds=frozenset({"job_dead", "run_failed"}), flows=frozenset({"broken"})
                ),
                Route(CallbackSink(on_alert)),
                Route(LogSink("error"), kinds=frozenset({"run_failed"})),
                Route(CallbackSink(on_alert), flows=frozenset({"watch"})),  # wants nothing from `broken`
            ]
        )

    monitors = [AlertMonitor(redis, namespace, settings()) for _ in range(2)]
    for monitor in monitors:
        assert await monitor.check() == []  # the first check sets the cursors: nothing older alerts
    await client.deploy(watch_plan())
    await start_worker(obs_tasks, queues=["observe"])
    run_id = await client.start_run("broken")
    assert (await client.wait(run_id, 20)).state == "failed"
    claimed = [alert for monitor in monitors for alert in await monitor.check()]
    assert sorted(a.kind for a in claimed) == ["job_dead", "run_failed"]
    for monitor in monitors:
        assert await monitor.check() == []  # nothing twice

    assert sorted(p["kind"] for p in received) == ["job_dead", "run_failed"]
    dead = next(p for p in received if p["kind"] == "job_dead")
    assert dead["subject"] == f"{run_id}.bad" and dead["flow"] == "broken"
    assert "RuntimeError: it broke" in dead["message"] and dead["details"]["task"] == "observe_tasks.fail"
    assert sorted(p["kind"] for p in called) == ["job_dead", "run_failed"]
    assert f"run {run_id} of flow broken failed" in capsys.readouterr().out


async def test_a_storm_becomes_a_few_alerts_and_one_summary(
    client: Client,
    redis: Redis,
    namespace: str,
    start_worker: WorkerFactory,
    obs_tasks: dict[str, Task[Any, Any]],
) -> None:
    called: list[dict[str, Any]] = []
    route = Route(CallbackSink(called.append), limit=RateLimit(burst=3, window=1.0))
    monitor = AlertMonitor(redis, namespace, AlertSettings(routes=[route]))
    await monitor.check()
    await client.deploy(watch_plan())
    await start_worker(obs_tasks, queues=["observe"], concurrency=10)
    runs = [await client.start_run("broken") for _ in range(20)]
    for run_id in runs:
        await client.wait(run_id, 30)
    assert len(await monitor.check()) == 40  # 20 dead jobs and 20 failed runs
    assert [p["kind"] for p in called[:3]] != ["summary"] * 3 and all(
        p["kind"] != "summary" for p in called[:3]
    )
    await asyncio.sleep(1.05)
    await monitor.check()
    (summary,) = called[3:]
    assert summary["kind"] == "summary" and summary["suppressed"] == 37
    assert summary["by_kind"]["job_dead"] + summary["by_kind"]["run_failed"] == 37
    assert summary["by_flow"] == {"broken": 37} and "37 more alerts" in summary["message"]


async def test_old_queues_and_lost_workers(client: Client, redis: Redis, namespace: str) -> None:
    called: list[dict[str, Any]] = []
    settings = AlertSettings(routes=[Route(CallbackSink(called.append))], queue_age_ms=50, worker_lost_ms=50)
    monitor = AlertMonitor(redis, namespace, settings)
    await client.deploy(watch_plan())
    await client.start_run("watch")
    await client.start_run("watch")
    # A worker that read one entry and then went silent (it never acknowledges).
    keys = Keys(namespace)
    stream = keys.stream("observe", 2)
    await redis.xgroup_create(stream, keys.group, id="0", mkstream=True)
    await redis.sadd(keys.queues, "observe")
    await redis.xreadgroup(keys.group, "gone-worker", {stream: ">"}, count=1)
    # A registered worker whose heartbeats stopped ten seconds ago (as the heartbeat script records it).
    cluster = ClusterKeys(keys)
    beat = now_ms() - 10_000
    await redis.zadd(cluster.workers, {"silent-worker": beat})
    await redis.hset(cluster.worker("silent-worker"), mapping={"heartbeat": beat, "queues": '["observe"]'})
    await asyncio.sleep(0.1)
    found = {(a.kind, a.subject) for a in await monitor.check()}
    assert found == {
        ("queue_old", "observe:normal"),
        ("worker_lost", "gone-worker"),
        ("worker_lost", "silent-worker"),
    }
    assert sorted(p["kind"] for p in called) == ["queue_old", "worker_lost", "worker_lost"]


def test_routes_from_a_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "alerts.toml"
    config.write_text(
        """
[alerts]
poll_seconds = 1
queue_age_seconds = 120

[[alerts.route]]
webhook = "http://127.0.0.1:9000/hook"
on = ["job_dead", "run_failed"]
flows = ["nightly_sales_etl"]
burst = 5
window_seconds = 300

[[alerts.route]]
log = "warning"
"""
    )
    settings = load_alert_settings(config)
    assert settings.poll == 1 and settings.queue_age_ms == 120_000
    hook, line = settings.routes
    assert (
        isinstance(hook.sink, WebhookSink) and hook.flows == {"nightly_sales_etl"} and hook.limit.burst == 5
    )
    assert isinstance(line.sink, LogSink) and line.flows is None and len(line.kinds) == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[alerts]\n", "no [[alerts.route]]"),
        ("x = 1\n", "no [alerts] table"),
        ('[[alerts.route]]\nlog = "error"\non = ["oops"]\n', "unknown alert kind"),
        ('[[alerts.route]]\nlog = "error"\nwebhook = "http://x"\n', "exactly one of"),
        ('[[alerts.route]]\nwebhook = "ftp://x"\n', "must start with http"),
        ('[[alerts.route]]\ncallback = "nothing"\n', "package.module:function"),
        ("[alerts\n", "alerts.toml"),
    ],
)
def test_bad_alert_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "alerts.toml"
    config.write_text(text)
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        load_alert_settings(config)
