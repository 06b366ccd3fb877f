"""ASGI middleware: the bearer token and the request size cap, applied before any route runs."""

from __future__ import annotations

import hmac
import json
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tqflow.runtime.api.settings import is_loopback

# Paths that hold no data: the health probe, the dashboard's files, the API's own description.
OPEN_PATHS = (
    "/api/health",
    "/health",
    "/",
    "/openapi.json",
    "/docs",
    "/redoc",
    "/docs/oauth2-redirect",
    "/favicon.ico",
)
OPEN_PREFIXES = ("/static/",)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


async def _reply(
    send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BearerToken:
    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.expected is None or scope["type"] != "http" or self._open(scope["path"]):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        await _reply(send, 401, "a bearer token is required", [(b"www-authenticate", b"Bearer")])

    @staticmethod
    def _open(path: str) -> bool:
        return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class BodyLimit:
    """413 for a declared or streamed body over `limit` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _reply(send, 413, f"request body over {self.limit} bytes")
            return
        # Read the body first (at most `limit` bytes), then hand it to the app in one message.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # a disconnect: let the app see it
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await _reply(send, 413, f"request body over {self.limit} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def host_name(netloc: str) -> str:
    """`127.0.0.1:8080` -> `127.0.0.1`, `[::1]:8080` -> `::1`, `Example.org` -> `example.org`."""
    try:
        return (urlsplit(f"//{netloc}").hostname or "").lower()
    except ValueError:
        return ""


class SameOrigin:
    """Refuse what a web page elsewhere could make a browser send (403): a mutating request (not GET,
    HEAD or OPTIONS) whose `Sec-Fetch-Site` says it came from another site, or whose `Origin` is not the
    API's own (scheme, host and port as the `Host` header names it). With `local_only` (no token, bound
    to loopback) also refuse a `Host` header that is not a loopback name or one of `hosts` (421), so a
    DNS-rebinding page cannot read the API through a name of its own."""

    def __init__(self, app: ASGIApp, local_only: bool, hosts: tuple[str, ...] = ()) -> None:
        self.app = app
        self.local_only = local_only
        self.hosts = {h.lower() for h in hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")
        if self.local_only:
            name = host_name(host)
            if not (is_loopback(name) or name in self.hosts):
                await _reply(send, 421, f"unknown Host {host[:100]!r}: this API answers loopback names only")
                return
        if scope["method"] not in SAFE_METHODS:
            problem = self._cross_site(headers, host)
            if problem is not None:
                await _reply(send, 403, problem)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _cross_site(headers: dict[bytes, bytes], host: str) -> str | None:
        site = headers.get(b"sec-fetch-site", b"").decode("latin-1").lower()
        if site and site not in ("same-origin", "none"):
            return f"cross-site request refused (Sec-Fetch-Site: {site})"
        origin = headers.get(b"origin")
        if origin is not None:
            text = origin.decode("latin-1")
            parts = urlsplit(text) if text != "null" else None
            if parts is None or parts.netloc.lower() != host.lower():
                return f"cross-site request refused (Origin {text[:100]!r} is not this API's)"
        return None
