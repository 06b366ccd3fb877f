"""Pub/sub on the namespace's shard: the done, cancel and wake channels (store/keys.py) are shard channels
(SSUBSCRIBE, Redis 7+ and Valkey) where the server has them, classic channels before Redis 7.

A shard channel's messages go only to the subscribers on the nodes of its slot's shard; a classic PUBLISH in
a Redis Cluster is copied to every node over the cluster bus. The Lua scripts publish by the same rule
(lua/common.lua: SPUBLISH when `redis.REDIS_VERSION_NUM` exists, i.e. from 7.0 on), and this module reads
the version a server reports (`redis_version`, which Valkey sets to its Redis-compatible 7.2.4), so the
scripts and the listeners always agree on one server. The choice is made again at every (re)subscription,
so a listener that reconnects after a failover to a server of another version follows.
"""

from __future__ import annotations

from typing import Any

from tqflow.errors import StoreError

SHARDED_SINCE = 7  # the major version that has SSUBSCRIBE/SPUBLISH (and Lua's REDIS_VERSION_NUM)

CONFIRMED = frozenset({"subscribe", "ssubscribe"})
MESSAGES = frozenset({"message", "smessage"})
# The server ends a shard channel subscription by itself when the slot leaves the node (a failover or a
# migration): the listener must subscribe again, where the slot is now.
DROPPED = frozenset({"sunsubscribe", "unsubscribe"})


def sharded_by_version(version: str) -> bool:
    """Whether a server reporting `redis_version` `version` has sharded pub/sub."""
    major = version.split(".", 1)[0]
    return major.isdigit() and int(major) >= SHARDED_SINCE


async def subscribe(redis: Any, pubsub: Any, *channels: str) -> bool:
    """Subscribe `pubsub` (redis.asyncio) to `channels` the way the server's scripts publish on them;
    True when they are shard channels."""
    info = await redis.info("server")
    sharded = sharded_by_version(str(info.get("redis_version", "")))
    await (pubsub.ssubscribe if sharded else pubsub.subscribe)(*channels)
    return sharded


def subscribe_sync(redis: Any, pubsub: Any, *channels: str) -> bool:
    """The same for a sync redis-py client (runtime/sync.py)."""
    info = redis.info("server")
    sharded = sharded_by_version(str(info.get("redis_version", "")))
    (pubsub.ssubscribe if sharded else pubsub.subscribe)(*channels)
    return sharded


def kind(message: dict[str, Any]) -> str:
    """`confirmed` (a (re)subscription took effect), `message`, `dropped` (the server ended it) or `other`."""
    what = message.get("type")
    if what in MESSAGES:
        return "message"
    if what in CONFIRMED:
        return "confirmed"
    if what in DROPPED:
        return "dropped"
    return "other"


class SubscriptionDropped(StoreError, ConnectionError):
    """The server ended a subscription (its slot moved): subscribe again."""
