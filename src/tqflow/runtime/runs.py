"""Starting a run of a deployed flow and reading it back."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from tqflow.errors import RunNotFound
from tqflow.plan import FlowPlan, JobPlan, Priority, canonical_json
from tqflow.plan.model import Memo
from tqflow.runtime import replication
from tqflow.runtime.clock import clock_stale, sync_clock
from tqflow.runtime.clock import now_ms as now_ms  # re-exported: most of the runtime imports it from here
from tqflow.runtime.expressions import Environment, ExpressionError, evaluate
from tqflow.runtime.flow_controls import check_flow, job_controls, with_controls
from tqflow.runtime.params import resolve_params
from tqflow.runtime.partitions import external_id
from tqflow.runtime.resend import new_nonce, resend
from tqflow.runtime.store import calls, codec, jobrows, payloads, records, runrows
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts

TERMINAL_JOB_STATES = ("succeeded", "dead", "skipped", "cancelled")
TERMINAL_RUN_STATES = ("succeeded", "failed", "cancelled")


def new_run_id() -> str:
    # Time-ordered: milliseconds in hex, then randomness.
    return f"{now_ms():011x}{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class JobInfo:
    name: str  # the job's name in its flow; the task name for a standalone job
    state: str
    attempt: int
    result: Any = None
    error: dict[str, Any] | None = None
    reason: str | None = None
    id: str = ""
    task: str = ""
    queue: str = ""
    priority: str = ""
    run_id: str = ""
    worker: str = ""
    enqueued_ms: int | None = None
    started_ms: int | None = None
    finished_ms: int | None = None
    due_ms: int | None = None
    child_run: str = ""  # a sub-flow job: its (latest) child run


@dataclass(frozen=True)
class RunInfo:
    id: str
    flow: str
    version: int
    state: str
    params: dict[str, Any]
    jobs: dict[str, JobInfo]
    outputs: dict[str, Any] = field(default_factory=dict)
    output_errors: dict[str, str] = field(default_factory=dict)
    parent_job: str = ""  # a sub-flow's child run: the job (RUN.JOB) that started it

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_RUN_STATES


def run_environment(run_id: str, created_ms: int, partition: int | None = None) -> dict[str, Any]:
    """`run.*` in expressions. `run_id` is the id in the run's partition; `run.id` is the one callers know
    (`pK:RUN` in a namespace of several partitions), so a task handed it can look its run up."""
    moment = dt.datetime.fromtimestamp(created_ms / 1000, dt.UTC)
    shown = external_id(partition, run_id)
    return {"id": shown, "date": moment.date().isoformat(), "time": moment.isoformat()}


def job_records(flow: FlowPlan, env: Environment | None = None) -> list[dict[str, Any]]:
    """What each job's hash holds for a run: the plan's job, flattened for the Lua scripts. `env`: the
    run's parameters and run fields, which its jobs' limit and fair keys are evaluated from. Numbers are
    sent as the strings the hash holds: a Lua number passed to redis.call is formatted with sprintf
    (~2,200 instructions of Redis a number, five a job: callgrind).

    A field whose value is its default (no options, no delay or deadline, no `when`, `after`, fan-out or
    unique key, no data dependencies, no dependents) is left out: every reader takes a missing field for
    its default, and each field a hash holds makes every lookup in it (a listpack: a linear scan) longer.
    The fields come in the order the hash keeps: `name` and `deps_left` first (create_run reads them at
    those places), then the ones the hot paths look up most (the release's `deps_left`, the end's
    `dependents`, the resolve's `data_deps` and `after`, the start's `queue`, `prio`, `opts`, `task`)."""
    controlled = any(job.limits or job.fair for job in flow.jobs.values())
    if not controlled:  # the same for every run of the flow: made once a plan object (a copy each call)
        return [dict(record) for record in _STATIC_RECORDS.get(flow, _records)]
    check_flow(flow)
    return _records(flow, env or Environment())


_STATIC_RECORDS = Memo()


def _records(flow: FlowPlan, env: Environment | None = None) -> list[dict[str, Any]]:
    """job_records' work; `env` None: a flow without limits or fair shares (nothing evaluated)."""
    dependents = flow.dependents()
    records: list[dict[str, Any]] = []
    for name in flow.order:
        job = flow.jobs[name]
        opts = job_opts(job)
        if env is not None:
            opts = with_controls(opts, job_controls(flow, job, env))
        record: dict[str, Any] = {"name": name, "deps_left": str(len(job.waits_for))}
        if dependents[name]:
            record["dependents"] = ""  # (below, once every record is made: placed here, first)
        if job.data_deps:
            record["data_deps"] = canonical_json(job.data_deps)
        if job.after:
            record["after"] = canonical_json(job.after)
        record["queue"] = job.queue
        record["prio"] = str(int(Priority.parse(job.priority)))
        record["task"] = job.task.name
        if opts:
            record["opts"] = opts
        if job.when:
            record["when"] = canonical_json(job.when)
        if job.delay_ms:
            record["delay_ms"] = str(job.delay_ms)
        if job.deadline_ms:
            record["deadline_ms"] = str(job.deadline_ms)
        if job.fan_out:
            record["fan_out"] = canonical_json(job.fan_out)
        if job.unique:
            record["unique"] = job.unique.model_dump_json()
        if job.signal is not None:  # waits for a payload instead of running a task (lua/common.lua)
            record["signal"] = str(job.signal.timeout_ms or 0)
        if job.subflow is not None:  # starts a child run instead of running a task (runtime/subflows.py)
            record["subflow"] = job.subflow.model_dump_json()
        record["flow"] = flow.name
        record["args"] = canonical_json(job.args)
        records.append(record)
    listed = {record["name"]: _listed(record) for record in records}
    for record in records:
        if "dependents" in record:
            record["dependents"] = canonical_json([listed[d] for d in dependents[record["name"]]])
    return records


# What a dependent's release reads beyond its state, queue, level and `after` (lua/common.lua resolve). None
# of them, nor `after`, changes while the job waits (a reprioritize changes its level, which is read).
RESOLVE_FIELDS = ("data_deps", "delay_ms", "deadline_ms", "opts", "signal", "subflow")
AFTER_LISTED = 256  # the longest `after` its upstream jobs' `dependents` repeat (each of them holds a copy)


def _listed(record: dict[str, Any]) -> Any:
    """How a job's upstream jobs list it in their `dependents`: its name (its release reads 10 fields of its
    record), or, for a job with none of RESOLVE_FIELDS and a short `after` (or none), `[NAME]` or
    `[NAME, AFTER]`, the condition itself: its release reads 3 fields (state, queue, level) rather than 10,
    and each field an HMGET names costs Redis ~2.8k instructions."""
    name = record["name"]
    after = record.get("after")
    if any(field in record for field in RESOLVE_FIELDS) or (after and len(after) > AFTER_LISTED):
        return name
    return [name, json.loads(after)] if after else [name]


def job_opts(job: JobPlan) -> str:
    """The options the worker reads (same form as a standalone job's): retry, timeout, dead-letter queue."""
    return records.options_json(
        deadline_ms=job.deadline_ms, timeout_ms=job.timeout_ms, retry=job.retry, dead_letter=job.dead_letter
    )


async def start_run(
    redis: Redis,
    keys: Keys,
    scripts: Scripts,
    flow: FlowPlan,
    version: int,
    params: Mapping[str, Any] | None = None,
    run_id: str | None = None,
) -> str:
    if clock_stale():  # its delays and deadlines by Redis's clock (F23)
        await sync_clock(redis)
    run_id = run_id or new_run_id()
    created = now_ms()
    run_fields, jobs = run_submission(flow, version, params or {}, run_id, created, keys.partition)
    call = calls.submit_run(keys, created, run_id, run_fields, jobs)
    wait = replication.of(redis)
    if not wait.replicas:
        await resend(lambda: scripts.run(call))  # its nonce (`sub`) makes a re-send safe
        return run_id

    async def with_wait() -> Any:  # WAIT on the script's own connection: it counts that client's writes
        await scripts.ensure_loaded()
        async with redis.pipeline(transaction=False) as pipe:
            scripts.queue(pipe, call)
            pipe.execute_command(*wait.command())
            return (await pipe.execute())[-1]

    replication.check(wait, await resend(with_wait), [external_id(keys.partition, run_id)])
    return run_id


def run_submission(
    flow: FlowPlan, version: int, params: Mapping[str, Any], run_id: str, created: int, partition: int | None
) -> tuple[str, list[dict[str, Any]]]:
    """A new run's fields (JSON) and job records (runs.job_records), its parameters checked against the
    plan (ParamError).
    `partition`: the run's (None in a namespace of one), for `run.id`."""
    run_env = run_environment(run_id, created, partition)
    values = resolve_params(flow, params, run_env)
    run_fields = {
        "flow": flow.name,
        "version": str(version),
        "plan_id": flow.id,
        "params": codec.encode(values),
        "sub": new_nonce(),  # a re-send of this submit finds its run by it (submit_run.lua)
    }
    jobs = job_records(flow, Environment(params=values, run=run_env))
    return json.dumps(run_fields), jobs


async def read_run(redis: Redis, keys: Keys, run_id: str, flow: FlowPlan | None = None) -> RunInfo:
    run = await runrows.record(redis, keys, run_id)
    if not run:
        raise RunNotFound(f"no run {run_id}")
    names = flow.order if flow is not None else []
    rows = await jobrows.flow_job_rows(redis, keys, run_id, names)
    jobs = {
        name: JobInfo(
            name,
            row.state or "unknown",
            row.attempt,
            _result(row.result),
            row.error,
            row.reason,
            child_run=row.child_run,
        )
        for name, row in zip(names, rows, strict=True)
    }
    params = codec.decode(run.get("params"))
    outputs, output_errors = {}, {}
    if flow is not None and run.get("state") == "succeeded":
        env = Environment(
            params=params,
            outputs={n: j.result for n, j in jobs.items() if j.state == "succeeded"},
            run=run_environment(run_id, int(run.get("created", 0)), keys.partition),
        )
        for output in flow.outputs:
            try:
                outputs[output.name] = evaluate(output.value, env)
            except ExpressionError as err:
                output_errors[output.name] = str(err)
    return RunInfo(
        run_id,
        str(run["flow"]),
        int(run["version"]),
        str(run["state"]),
        params,
        jobs,
        outputs,
        output_errors,
        parent_job=str(run.get("parent_job") or ""),
    )


async def wait_run(redis: Redis, keys: Keys, run_id: str, timeout: float | None = None) -> str:
    """Block until the run is terminal; returns its state ('' on timeout)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        state = await runrows.state(redis, keys, run_id)
        if state in TERMINAL_RUN_STATES:
            return str(state)
        wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
        if wait <= 0:
            return ""
        # The run's :done list gets an element when it finishes; BLPOP then returns at once.
        done = await redis.blpop([keys.run_done(run_id)], timeout=max(wait, 0.01))
        if done:
            await redis.rpush(keys.run_done(run_id), done[1])  # leave it for other waiters
            return str(done[1])


def _result(text: str | None) -> Any:
    try:
        return payloads.value(text)
    except payloads.PayloadError as err:
        return f"<unreadable result: {err}>"
