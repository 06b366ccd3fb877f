"""Sub-flow jobs (`job NAME = flow OTHER(p=…)`): the Python steps between a parent run and its child runs.

A sub-flow job runs no task and holds no worker slot. When it becomes ready the scripts put it in the
`:subflows` outbox in state `starting` (lua/common.lua `start_subflow`); a worker's `SubflowSteps` then
1. evaluates its arguments (the child's parameters) from the parent run, picks the deployed version of the
   child flow the plan was compiled against, and starts the child run with an id derived from the parent
   job and its launch number (`RUN-JOB-N`): `subflow_start.lua` creates the run and moves the job to state
   `child` in one script, fenced by the state and the launch number, so a repeated start does nothing;
2. when the child run ends, its last script moves the job back to the outbox in state `collecting`
   (`subflow_child_ended`), or ends it `cancelled` when the parent was being cancelled; the worker reads the
   child's outputs (succeeded: the job's result is {output: value}) or applies the job's retry policy
   (failed or cancelled child: a retry is a new child run) in `subflow_end.lua`, fenced by the state and
   the child's id.
Everything is in the parent run's hash tag (a child run lives in its parent's partition), so each step is
one atomic script; a worker that dies between steps leaves the job id in the outbox for another worker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tqflow.errors import TqflowError, WorkerError
from tqflow.plan import FlowPlan, Plan, RetryPlan
from tqflow.plan.model import SubflowPlan
from tqflow.runtime import clock
from tqflow.runtime.clock import now_ms
from tqflow.runtime.deployments import Deployments
from tqflow.runtime.expressions import Environment, ExpressionError, evaluate
from tqflow.runtime.retries import decide
from tqflow.runtime.runs import read_run, run_environment, run_submission
from tqflow.runtime.store import calls, codec, jobrows, payloads, runrows
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts

log = structlog.get_logger("tqflow.worker")
BATCH = 100  # outbox entries one pass handles
IDLE_SLEEP = 1.0  # seconds between passes with nothing to do (a script that fills the outbox wakes it)


class SubflowFailed(WorkerError):
    """A sub-flow job's child run did not succeed (its retry policy sees this type)."""


def with_subflows(plan: Plan, name: str) -> list[FlowPlan]:
    """Flow `name` of the plan and every flow its sub-flow jobs start, directly or not (what a worker
    running only that flow needs: their modules and queues)."""
    found: dict[str, FlowPlan] = {}
    todo = [name]
    while todo:
        current = todo.pop()
        if current in found or current not in plan.flows:
            continue
        found[current] = plan.flows[current]
        todo.extend(j.subflow.flow for j in plan.flows[current].jobs.values() if j.subflow is not None)
    return list(found.values())


def child_run_id(run_id: str, job: str, launch: int) -> str:
    """The id of a sub-flow job's Nth child run: derived, so a repeated start finds it taken."""
    return f"{run_id}-{job}-{launch}"


class SubflowSteps:
    """The worker role that moves sub-flow jobs through the outbox (see the module's docstring)."""

    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts, control: Redis | None = None) -> None:
        self.redis, self.keys, self.scripts = redis, keys, scripts
        # deploys are in the control slot: a data partition's worker reads them over the control's connection
        self.control = control if control is not None else redis
        self.deployments = Deployments(self.control, keys)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                handled = await self.pass_once()
            except (RedisError, OSError) as err:
                log.warning("sub-flow step failed; retrying", error=repr(err))
                handled = 0
            if handled < BATCH:
                await clock.wait(self._wake, IDLE_SLEEP)

    async def pass_once(self) -> int:
        """Handle what waits in the outbox now; returns how many entries were looked at."""
        ids = await self.redis.zrange(self.keys.subflows, 0, BATCH - 1)
        for job_id in ids:
            try:
                await self.step(str(job_id))
            except (RedisError, OSError):
                raise
            except Exception as err:  # one bad job must not stop the others' steps
                log.error("sub-flow step crashed", job=job_id, error=repr(err))
        return len(ids)

    async def step(self, job_id: str) -> str:
        record = await jobrows.record(self.redis, self.keys, job_id)
        state = record.get("state")
        if state == "starting":
            return await self._start(job_id, record)
        if state == "collecting":
            return await self._collect(job_id, record)
        await self.redis.zrem(self.keys.subflows, job_id)  # ended or moved on meanwhile (a cancel)
        return "stale"

    async def _start(self, job_id: str, record: Mapping[str, str]) -> str:
        run_id, name = record["run"], record["name"]
        spec = SubflowPlan.model_validate_json(record["subflow"])
        launch = int(record.get("launches") or 0) + 1
        try:
            version, child_plan = await self._child_plan(spec)
            params = await self._arguments(run_id, record)
            child = child_run_id(run_id, name, launch)
            created = now_ms()
            fields, jobs = run_submission(child_plan, version, params, child, created, self.keys.partition)
        except TqflowError as err:
            return await self._end(job_id, "", "dead", _error(type(err).__name__, str(err)))
        run = {**json.loads(fields), "names": json.dumps(child_plan.order), "parent_run": run_id}
        call = calls.subflow_start(self.keys, created, job_id, launch, child, json.dumps(run), jobs)
        status = str(await self.scripts.run(call))
        if status == "started":
            log.info("sub-flow started", job=job_id, child=child, flow=child_plan.name)
        return status

    async def _collect(self, job_id: str, record: Mapping[str, str]) -> str:
        child = record["child"]
        final = record.get("child_state") or "failed"
        if final == "succeeded":
            try:
                outputs = await self._outputs(child)
            except TqflowError as err:
                return await self._end(job_id, child, "dead", _error("SubflowOutputError", str(err)))
            return await self._end(job_id, child, "succeeded", payloads.encode(outputs))
        flow = SubflowPlan.model_validate_json(record["subflow"]).flow
        error = SubflowFailed(f"child run {child} of flow {flow} {final}")
        if final == "cancelled":  # cancelled by hand, not through this run: no retry
            return await self._end(job_id, child, "dead", _error("SubflowCancelled", str(error), child))
        retry = RetryPlan.model_validate(json.loads(record.get("opts") or "{}").get("r") or {})
        decision = decide(retry, error, int(record.get("attempt") or 1))
        payload = _error("SubflowFailed", str(error), child)
        if decision.retry:
            return await self._end(job_id, child, "retry", payload, now_ms() + decision.delay_ms)
        return await self._end(job_id, child, "dead", payload)

    async def _end(self, job_id: str, child: str, outcome: str, payload: str, due: int = 0) -> str:
        call = calls.subflow_end(self.keys, now_ms(), job_id, child, outcome, payload, due)
        return str(await self.scripts.run(call))

    async def _child_plan(self, spec: SubflowPlan) -> tuple[int, FlowPlan]:
        """The deployed version of the child flow whose plan is the one compiled with the parent (the
        newest such), else the current version (the child was redeployed on its own since)."""
        key = self.keys.flow(spec.flow)
        fields = {str(k): str(v) for k, v in (await self.control.hgetall(key)).items()}
        if not fields:
            raise SubflowNotDeployed(f"flow `{spec.flow}` is not deployed (deploy the file that starts it)")
        matching = [int(f[3:]) for f, v in fields.items() if f.startswith("id:") and v == spec.plan_id]
        version = max(matching) if matching else int(fields["current"])
        return version, FlowPlan.model_validate_json(fields[f"v:{version}"])

    async def _arguments(self, run_id: str, record: Mapping[str, str]) -> dict[str, Any]:
        """The job's arguments evaluated against its run: the child's parameters."""
        params, created = await runrows.params_created(self.redis, self.keys, run_id)
        deps = json.loads(record.get("data_deps") or "[]")
        results = await jobrows.results(self.redis, self.keys, [f"{run_id}.{dep}" for dep in deps])
        outputs = {dep: payloads.value(result) for dep, result in zip(deps, results, strict=True)}
        env = Environment(
            params=codec.decode(params) or {},
            outputs=outputs,
            run=run_environment(run_id, created or now_ms(), self.keys.partition),
        )
        try:
            trees = json.loads(record.get("args") or "{}")
            return {name: evaluate(tree, env) for name, tree in trees.items()}
        except ExpressionError as err:
            raise SubflowArgumentError(str(err)) from err

    async def _outputs(self, child: str) -> dict[str, Any]:
        flow, version = await runrows.flow_version(self.redis, self.keys, child) or ("", 0)
        _version, plan = await self.deployments.get(flow, version)
        info = await read_run(self.redis, self.keys, child, plan)
        if info.output_errors:
            raise SubflowOutputError("; ".join(f"output {k}: {v}" for k, v in info.output_errors.items()))
        return dict(info.outputs)


class SubflowNotDeployed(WorkerError):
    """The child flow of a sub-flow job has no deployed version."""


class SubflowArgumentError(WorkerError):
    """A sub-flow job's argument could not be evaluated from its run."""


class SubflowOutputError(WorkerError):
    """A child run succeeded but one of its outputs could not be evaluated."""


def _error(kind: str, message: str, child: str | None = None) -> str:
    body: dict[str, Any] = {"type": kind, "message": message}
    if child is not None:
        body["child"] = child
    return json.dumps(body)
