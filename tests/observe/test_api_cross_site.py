"""F19 on every route that changes something (the API's own description lists them, so a route added later
is covered too): with no token on loopback, a form a page of another site makes a browser POST (an
`Origin` of that site, `Sec-Fetch-Site: cross-site`, no token) is refused 403, and a request naming a
`Host` that is not a loopback name (DNS rebinding) is refused 421, before any route runs: the flows stay
deployed and unpaused, no run, schedule or event run is started."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tqflow.compiler import compile_file
from tqflow.runtime.api.app import create_app
from tqflow.runtime.api.settings import ApiSettings
from tqflow.runtime.client import Client

from helpers import FLOWS

SAFE = ("get", "head", "options")
# the newer routes, named so that the test fails if one of them leaves the description
NEWER = {
    ("post", "/api/schedules"),
    ("delete", "/api/schedules/{name}"),
    ("post", "/api/events/{name}"),
    ("post", "/api/runs/{run_id}/signals/{name}"),
    ("post", "/api/runs/{run_id}/resume"),
    ("post", "/api/runs"),
    ("post", "/api/flows/{name}/pause"),
    ("post", "/api/flows/{name}/unpause"),
    ("delete", "/api/flows/{name}"),
    ("post", "/api/flows/{name}/backfill"),
}
FORM = {"content-type": "application/x-www-form-urlencoded"}
CROSS_SITE = [
    {**FORM, "origin": "http://evil.example", "sec-fetch-site": "cross-site"},
    {**FORM, "origin": "http://evil.example"},  # a browser without Sec-Fetch-Site
    {**FORM, "sec-fetch-site": "cross-site"},  # a browser that sends no Origin on this request
    {**FORM, "origin": "null", "sec-fetch-site": "cross-site"},  # a sandboxed frame
]
VALUES = {"name": "ship", "run_id": "0", "job_id": "0"}


@pytest.fixture
async def api(redis_url: str, namespace: str) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = create_app(ApiSettings(redis_url, namespace))  # no token, loopback: the guarded mode
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
        yield http, app
    await app.state.services.close()


def mutating(app: Any) -> list[tuple[str, str]]:
    routes = [
        (method, path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method not in SAFE
    ]
    assert set(routes) >= NEWER, NEWER - set(routes)
    return routes


async def nothing_changed(client: Client) -> None:
    flows = {f: await client.redis.hmget(client.keys.flow(f), "current", "paused") for f in ("ship", "audit")}
    assert all(current is not None and paused is None for current, paused in flows.values()), flows
    assert await client.redis.zcard(client.keys.runs) == 0
    assert await client.schedules() == []


async def test_a_cross_site_form_post_changes_nothing_on_any_route(
    api: tuple[httpx.AsyncClient, Any], client: Client
) -> None:
    http, app = api
    result = compile_file(FLOWS / "orders.tqflow")  # flows with event triggers: pause, emit, start, …
    assert result.plan is not None
    await client.deploy(result.plan)
    routes = mutating(app)
    for headers in CROSS_SITE:
        for method, path in routes:
            url = path.format(**VALUES)
            reply = await http.request(method, url, headers=headers, content=b"order=1&id=1")
            assert reply.status_code == 403, (method, url, headers, reply.text)
            assert "cross-site request refused" in reply.json()["detail"]
    await nothing_changed(client)
    # the same request from the dashboard itself (same origin) reaches the route
    same = {"origin": "http://127.0.0.1", "sec-fetch-site": "same-origin"}
    paused = await http.post("/api/flows/ship/pause", headers=same)
    assert paused.status_code == 200, paused.text
    assert await client.redis.hget(client.keys.flow("ship"), "paused") is not None


async def test_an_unknown_host_is_refused_on_every_route(
    api: tuple[httpx.AsyncClient, Any], client: Client
) -> None:
    http, app = api
    result = compile_file(FLOWS / "orders.tqflow")
    assert result.plan is not None
    await client.deploy(result.plan)
    for host in ("evil.example", "evil.example:8080", "127.0.0.1.evil.example", "10.0.0.1"):
        for method, path in mutating(app):
            url = path.format(**VALUES)
            reply = await http.request(method, url, headers={"host": host, **FORM}, content=b"x=1")
            assert reply.status_code == 421, (method, url, host, reply.text)
    await nothing_changed(client)
