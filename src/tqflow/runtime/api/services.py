"""What the routes use: one Redis connection, the Inspector (reads), the Client (writes), the gauges."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.inspect import Inspector
from tqflow.runtime.metrics import RedisCollector


@dataclass
class Services:
    redis: Redis
    inspector: Inspector
    client: Client
    collector: RedisCollector
    registry: CollectorRegistry

    @classmethod
    def open(cls, redis_url: str, namespace: str) -> Services:
        redis = connect(redis_url)  # connects lazily, on the serving event loop
        inspector = Inspector(redis, namespace)
        collector = RedisCollector(inspector, jobs=True)  # with every worker's job counters
        registry = CollectorRegistry()
        registry.register(collector)
        return cls(redis, inspector, Client(redis, namespace), collector, registry)

    async def close(self) -> None:
        await self.redis.aclose()
