"""Deployed flows: each flow's plans stored as numbered versions, the current one marked."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from tqflow.compiler.plan import FlowPlan, Plan
from tqflow.runtime.keys import Keys


@dataclass(frozen=True)
class Deployed:
    flow: str
    version: int
    plan_id: str
    changed: bool  # False when the same plan was already the current version


class FlowNotDeployed(LookupError):
    pass


class Deployments:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def deploy(self, plan: Plan) -> list[Deployed]:
        return [await self.deploy_flow(flow) for flow in plan.flows.values()]

    async def deploy_flow(self, flow: FlowPlan) -> Deployed:
        key = self.keys.flow(flow.name)
        plan_id = flow.id
        current = await self._get(key, "current")
        if current is not None and await self._get(key, f"id:{current}") == plan_id:
            return Deployed(flow.name, int(current), plan_id, changed=False)
        version = await self.redis.hincrby(key, "latest", 1)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={f"v:{version}": flow.canonical_json(), f"id:{version}": plan_id, "current": version},
            )
            pipe.sadd(self.keys.flows, flow.name)
            await pipe.execute()
        return Deployed(flow.name, version, plan_id, changed=True)

    async def get(self, name: str, version: int | None = None) -> tuple[int, FlowPlan]:
        key = self.keys.flow(name)
        if version is None:
            current = await self.redis.hget(key, "current")
            if current is None:
                raise FlowNotDeployed(f"flow `{name}` is not deployed (run `tqc deploy FILE` first)")
            version = int(current)
        text = await self.redis.hget(key, f"v:{version}")
        if text is None:
            raise FlowNotDeployed(f"flow `{name}` has no version {version}")
        return version, FlowPlan.model_validate_json(text)

    async def names(self) -> list[str]:
        return sorted(str(n) for n in await self.redis.smembers(self.keys.flows))

    async def _get(self, key: str, field: str) -> str | None:
        value = await self.redis.hget(key, field)
        return None if value is None else str(value)
