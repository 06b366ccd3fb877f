"""The producer side: deploy plans, start runs, wait for them and read them back."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from tqflow.compiler.plan import FlowPlan, Plan
from tqflow.runtime.connection import connect
from tqflow.runtime.deployments import Deployed, Deployments
from tqflow.runtime.keys import Keys
from tqflow.runtime.runs import RunInfo, read_run, start_run, wait_run
from tqflow.runtime.scripts import Scripts


class Client:
    def __init__(self, redis: Redis, namespace: str = "tqflow") -> None:
        self.redis = redis
        self.keys = Keys(namespace)
        self.scripts = Scripts(redis)
        self.deployments = Deployments(redis, self.keys)

    @classmethod
    def from_url(cls, url: str, namespace: str | None = None) -> Client:
        return cls(connect(url), namespace or os.environ.get("TQFLOW_NAMESPACE", "tqflow"))

    async def close(self) -> None:
        await self.redis.aclose()

    async def deploy(self, plan: Plan) -> list[Deployed]:
        return await self.deployments.deploy(plan)

    async def start_run(
        self, flow: str, params: Mapping[str, Any] | None = None, version: int | None = None
    ) -> str:
        version_number, plan = await self.deployments.get(flow, version)
        return await start_run(self.redis, self.keys, self.scripts, plan, version_number, params)

    async def wait(self, run_id: str, timeout: float | None = None) -> RunInfo:
        await wait_run(self.redis, self.keys, run_id, timeout)
        return await self.run_info(run_id)

    async def run_info(self, run_id: str) -> RunInfo:
        run = await self.redis.hmget(self.keys.run(run_id), "flow", "version")
        if run[0] is None:
            raise LookupError(f"no run {run_id}")
        _, plan = await self.deployments.get(str(run[0]), int(str(run[1])))
        return await read_run(self.redis, self.keys, run_id, plan)

    async def flow(self, name: str, version: int | None = None) -> tuple[int, FlowPlan]:
        return await self.deployments.get(name, version)
