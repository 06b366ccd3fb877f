"""The stdlib tasks (`use std.http` …): called directly, and run by a worker from a flow."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any  # the worker factory (conftest's WorkerFactory; `conftest` is ambiguous here)

import pytest

from tqflow.compiler import compile_source
from tqflow.dsl.diagnostics import render_all
from tqflow.runtime.client import Client
from tqflow.runtime.registry import load_tasks
from tqflow.stdlib import http, log, notify, shell
from tqflow.stdlib import sleep as sleep_module
from tqflow.stdlib import time as time_module

from helpers import source


class Recorder(BaseHTTPRequestHandler):
    received: list[tuple[str, str, str]] = []

    def do_GET(self) -> None:
        status = int(self.path.rsplit("/", 1)[-1]) if self.path.startswith("/status/") else 200
        self._answer(status, json.dumps({"path": self.path}))

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        Recorder.received.append((self.path, self.headers.get("Content-Type", ""), body))
        self._answer(201, "created")

    def _answer(self, status: int, body: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Recorder.received = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_http_get_returns_status_body_and_json(server: str) -> None:
    response = http.get(f"{server}/hello")
    assert response["status"] == 200 and response["json"] == {"path": "/hello"}


def test_http_status_outside_expect_raises_so_retries_apply(server: str) -> None:
    with pytest.raises(http.HTTPStatusError, match="HTTP 503"):
        http.request(f"{server}/status/503")
    assert http.request(f"{server}/status/404", expect=[404])["status"] == 404


def test_http_connection_refused_is_a_connection_error() -> None:
    with pytest.raises(ConnectionError):
        http.get("http://127.0.0.1:9/nothing", timeout=2)


def test_webhook_posts_text_as_json(server: str) -> None:
    assert notify.webhook(f"{server}/hook", "ETL failed") == 201
    assert Recorder.received == [("/hook", "application/json", '{"text": "ETL failed"}')]


def test_shell_runs_with_output_exit_code_and_timeout() -> None:
    done = shell.run([sys.executable, "-c", "print('hi')"])
    assert done == {"returncode": 0, "stdout": "hi\n", "stderr": ""}
    with pytest.raises(shell.CommandFailed, match="exited with 3"):
        shell.run(f"{sys.executable} -c 'import sys; sys.exit(3)'")
    assert shell.run(["false"], check=False)["returncode"] == 1
    with pytest.raises(TimeoutError):
        shell.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2)


async def test_sleep_and_log(caplog: pytest.LogCaptureFixture) -> None:
    assert await time_module.sleep.fn(0.01) == 0.01
    assert await sleep_module.sleep.fn(0.01) == 0.01
    with caplog.at_level(logging.INFO, logger="tqflow.flow"):
        assert log.line("done", fields={"rows": 3}) == "done"
    assert caplog.records[-1].getMessage() == "done"
    with pytest.raises(ValueError, match="level"):
        log.line("x", level="loud")


FLOW = """use std.http as http
use std.notify as notify
use std.log as log

flow ping {
  params {
    base: Str
  }
  job page = http.get(url=f"{params.base}/status/200")
  job told = notify.webhook(url=f"{params.base}/hook", body=f"status {page.out.status}")
  job noted = log.line(message="pinged", fields={"status": page.out.status, "hook": told.out})
  output hook_status = told.out
}
"""


def test_a_flow_using_the_stdlib_type_checks() -> None:
    result = compile_source(source(FLOW))
    assert result.ok, render_all(result.diagnostics)
    assert result.plan is not None
    assert result.plan.flows["ping"].modules == [
        "tqflow.stdlib.http",
        "tqflow.stdlib.log",
        "tqflow.stdlib.notify",
    ]


async def test_stdlib_flow_runs_on_a_worker(client: Client, start_worker: Any, server: str) -> None:
    plan = compile_source(source(FLOW)).plan
    assert plan is not None
    await client.deploy(plan)
    tasks = load_tasks(plan.flows["ping"].modules, [Path(__file__).parent])
    await start_worker(tasks, concurrency=2)
    run_id = await client.start_run("ping", {"base": server})
    info = await client.wait(run_id, timeout=20)
    assert info.state == "succeeded", info
    assert info.outputs == {"hook_status": 201}
    assert Recorder.received[0][2] == '{"text": "status 200"}'
