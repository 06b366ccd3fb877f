"""The cluster's Lua scripts (lua/cluster_*.lua), loaded with the shared prelude like the runtime's."""

from __future__ import annotations

from functools import cache
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from tqflow.runtime.store.scripts import script_text


def lua_file(name: str) -> str:
    return resources.files("tqflow.runtime.store").joinpath("lua").joinpath(f"{name}.lua").read_text()


@cache
def fire_text() -> str:
    """Firing a tick is the fence followed by the runtime's own submit_run, so a run is created only
    by the current leader, once per tick, in one atomic script."""
    return script_text("cluster_fire_fence") + "\n" + lua_file("submit_run")


class ClusterScripts:
    def __init__(self, redis: Redis) -> None:
        self.heartbeat: AsyncScript = redis.register_script(script_text("cluster_heartbeat"))
        self.reclaim: AsyncScript = redis.register_script(script_text("cluster_reclaim"))
        self.leases: AsyncScript = redis.register_script(script_text("cluster_leases"))
        self.handback: AsyncScript = redis.register_script(script_text("cluster_handback"))
        self.leader: AsyncScript = redis.register_script(script_text("cluster_leader"))
        self.fire: AsyncScript = redis.register_script(fire_text())
