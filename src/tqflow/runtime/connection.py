"""Connecting to Redis: the URL from the command line or TQFLOW_REDIS_URL, hiredis when present."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.asyncio import BlockingConnectionPool, Redis

URL_ENV = "TQFLOW_REDIS_URL"
MAX_CONNECTIONS_ENV = "TQFLOW_REDIS_MAX_CONNECTIONS"
DEFAULT_MAX_CONNECTIONS = 256
POOL_WAIT_S = 60  # a command waits this long for a free connection before it fails
SCHEMES = ("redis", "rediss", "unix")


def resolve_url(explicit: str | None, environ: Mapping[str, str]) -> str | None:
    """The URL to use, or None when an embedded server should be started."""
    url = explicit or environ.get(URL_ENV) or None
    if url is not None and urlsplit(url).scheme not in SCHEMES:
        raise ValueError(f"Redis URL {redact(url)!r} must start with redis://, rediss:// or unix://")
    return url


def connect(url: str, max_connections: int | None = None) -> Redis:
    """A client whose pool waits for a free connection instead of failing when a busy worker's jobs, its
    batched scripts and its background loops all hold one at once (redis-py's own pool raises at 100)."""
    return Redis.from_pool(BlockingConnectionPool.from_url(url, **_pool_options(max_connections)))


def connect_sync(url: str, max_connections: int | None = None) -> redis.Redis:
    """The same, for sync code (runtime/sync.py): redis-py's sync client, same pool settings."""
    pool = redis.BlockingConnectionPool.from_url(url, **_pool_options(max_connections))
    return redis.Redis.from_pool(pool)  # owns the pool: close() disconnects it


def _pool_options(max_connections: int | None) -> dict[str, Any]:
    limit = max_connections or int(os.environ.get(MAX_CONNECTIONS_ENV, DEFAULT_MAX_CONNECTIONS))
    return {
        "max_connections": limit,
        "timeout": POOL_WAIT_S,
        "decode_responses": True,
        # Bytes that are not UTF-8 (garbage written to Redis by anyone) decode to lone surrogates instead of
        # raising in the middle of a reply (F15: one such entry failed every fetch of its batch); they
        # encode back to the same bytes, so ids read this way still name their keys.
        "encoding_errors": "surrogateescape",
        "health_check_interval": 30,
    }


def redact(url: str) -> str:
    """The URL with any password replaced, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
