"""Helpers for the private Redis servers the security tests start."""

from __future__ import annotations

import socket
from collections.abc import Callable

import redis

ServerFactory = Callable[..., int]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str) -> Callable[[int], bool]:
    def check(port: int) -> bool:
        try:
            return bool(redis.Redis.from_url(url.format(port=port), socket_timeout=1).ping())
        except redis.RedisError:
            return False

    return check
