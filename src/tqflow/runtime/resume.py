"""Resume an ended run: its jobs that did not succeed run again on the version the run started with, the
others keep their outputs (lua/resume_run.lua does it in one script). `from_job` re-runs that job and
everything downstream of it instead."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from tqflow.errors import ClientError, RunNotFound
from tqflow.runtime.deployments import Deployments
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls, runrows
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts


class ResumeError(ClientError, ValueError):
    """A run that cannot be resumed now: it has not ended, or `from_job` is not one of its jobs."""


@dataclass(frozen=True)
class Resumed:
    run_id: str
    rerun: int  # jobs that run again (0: every job had succeeded)


async def resume_run(
    redis: Redis,
    keys: Keys,
    scripts: Scripts,
    deployments: Deployments,
    run_id: str,
    from_job: str | None = None,
) -> Resumed:
    found = await runrows.flow_version(redis, keys, run_id)
    if found is None:
        raise RunNotFound(f"no run {run_id}")
    _, flow = await deployments.get(*found)  # the run's own version
    if from_job is not None and from_job not in flow.jobs:
        known = ", ".join(flow.order)
        raise ResumeError(f"run {run_id} (flow {flow.name}) has no job `{from_job}`; its jobs are {known}")
    jobs = [(name, ",".join(flow.jobs[name].waits_for)) for name in flow.order]
    reply = await scripts.run(calls.resume_run(keys, now_ms(), run_id, from_job or "", jobs))
    outcome = str(reply[0])
    if outcome == "missing":
        raise RunNotFound(f"no run {run_id}")
    if outcome == "running":
        raise ResumeError(f"run {run_id} has not ended; resume it when it has (or cancel it first)")
    return Resumed(run_id, int(reply[1]) if outcome == "resumed" else 0)
