"""Connecting to Redis: the URL from the command line or TQFLOW_REDIS_URL, hiredis when present."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis

URL_ENV = "TQFLOW_REDIS_URL"
SCHEMES = ("redis", "rediss", "unix")


def resolve_url(explicit: str | None, environ: Mapping[str, str]) -> str | None:
    """The URL to use, or None when an embedded server should be started."""
    url = explicit or environ.get(URL_ENV) or None
    if url is not None and urlsplit(url).scheme not in SCHEMES:
        raise ValueError(f"Redis URL {redact(url)!r} must start with redis://, rediss:// or unix://")
    return url


def connect(url: str) -> Redis:
    return Redis.from_url(url, decode_responses=True, health_check_interval=30)


def redact(url: str) -> str:
    """The URL with any password replaced, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
