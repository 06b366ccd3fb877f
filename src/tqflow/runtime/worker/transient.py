"""Which failures are Redis being away for a moment (retry) and which are bugs (do not)."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
# Replies of a Redis that will answer again soon: restarting, running a long script, failing over, full.
TRANSIENT_REPLIES = (
    *("LOADING", "BUSY", "TRYAGAIN", "READONLY"),
    *("MASTERDOWN", "CLUSTERDOWN", "OOM", "NOREPLICAS"),
)


def is_transient(err: BaseException) -> bool:
    if isinstance(err, REDIS_DOWN):
        return True
    return isinstance(err, ResponseError) and str(err).startswith(TRANSIENT_REPLIES)
