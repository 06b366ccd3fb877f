"""`use std.http as http`: HTTP requests from a flow (standard library `urllib`, no extra dependency).

    job page = http.get(url="http://127.0.0.1:8000/health")
    job sent = http.request(url=u, method="POST", json={"day": params.day}, expect=[200, 201])

Each returns `{"status": int, "headers": {…}, "body": str, "json": … or none}`. A status outside
`expect` (default: any 2xx or 3xx) raises `HTTPStatusError`, so the job's retry policy applies;
a connection failure raises `ConnectionError` and a slow server `TimeoutError`.
"""

from __future__ import annotations

import json as jsonlib
import socket
import urllib.error
import urllib.request
from typing import Any

from tqflow.errors import WorkerError
from tqflow.runtime import task


class HTTPStatusError(WorkerError):
    """The server answered with a status the job did not expect."""

    def __init__(self, status: int, url: str, body: str) -> None:
        super().__init__(f"HTTP {status} from {url}: {body[:200]}")
        self.status = status


@task
def request(
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: str | None = None,
    json: Any = None,
    timeout: float = 30.0,
    expect: list[int] | None = None,
) -> dict[str, Any]:
    """Send one request; `json` (any JSON value) is sent as the body with a JSON content type."""
    data = body.encode() if body is not None else None
    all_headers = dict(headers or {})
    if json is not None:
        data = jsonlib.dumps(json).encode()
        all_headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method.upper(), headers=all_headers)
    status, response_headers, text = _send(req, timeout)
    if (expect is not None and status not in expect) or (expect is None and not 200 <= status < 400):
        raise HTTPStatusError(status, url, text)
    return {"status": status, "headers": response_headers, "body": text, "json": _maybe_json(text)}


@task
def get(url: str, headers: dict[str, str] | None = None, timeout: float = 30.0) -> dict[str, Any]:
    """`request(url, method="GET")`."""
    return request(url, headers=headers, timeout=timeout)


@task
def post_json(url: str, data: Any, timeout: float = 30.0) -> dict[str, Any]:
    """POST `data` as JSON."""
    return request(url, method="POST", json=data, timeout=timeout)


def _send(req: urllib.request.Request, timeout: float) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:  # a status >= 400 still has a body worth reporting
        return err.code, dict(err.headers.items()), err.read().decode(errors="replace")
    except TimeoutError as err:
        raise TimeoutError(f"{req.full_url}: no answer within {timeout}s") from err
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError | socket.timeout):
            raise TimeoutError(f"{req.full_url}: no answer within {timeout}s") from err
        raise ConnectionError(f"{req.full_url}: {err.reason}") from err


def _maybe_json(text: str) -> Any:
    try:
        return jsonlib.loads(text)
    except ValueError:
        return None
