"""Fan-out: a flow job `for x in LIST` becomes one child job per item, created atomically by the
parent's attempt (fenced by its token). The parent's `.out` is the children's results in item order."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from tqflow.runtime.expressions import Environment, ExpressionError, evaluate
from tqflow.runtime.flow_controls import for_item
from tqflow.runtime.jobs import MAX_SCRIPT_ARGS
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import calls, payloads
from tqflow.runtime.task import Task
from tqflow.runtime.validation import validator

if TYPE_CHECKING:
    from tqflow.runtime.worker.attempt import Attempt
    from tqflow.runtime.worker.context import WorkerContext

MAX_ITEMS = 100_000


async def fan_out(worker: WorkerContext, attempt: Attempt, task: Task[Any, Any], env: Environment) -> str:
    run = attempt.run or {}
    spec = json.loads(run["fan_out"])
    items = evaluate(spec["over"], env)
    if not isinstance(items, list):
        raise ExpressionError(f"a fan-out needs a list to iterate over, got a {type(items).__name__}")
    if len(items) > MAX_ITEMS:
        raise ExpressionError(f"a fan-out over {len(items)} items; the limit is {MAX_ITEMS}")
    trees = json.loads(run["args"])
    check = validator(task)
    bodies = []
    item_opts: list[str] = []
    for item in items:
        child = Environment(env.params, env.outputs, {**env.variables, spec["var"]: item}, env.run)
        kwargs = {name: evaluate(tree, child) for name, tree in trees.items()}
        check.validate(kwargs)
        bodies.append(payloads.encode(kwargs, worker.settings.payloads, None))
        own = for_item(attempt.opts, child)  # limit or fair keys that read the item
        if own is not None:
            item_opts.append(own)
    opts = item_opts if item_opts else None
    sent = len(bodies) * (2 if opts else 1)
    if sent + 6 <= MAX_SCRIPT_ARGS:
        call = calls.fan_out(
            worker.keys, now_ms(), attempt.job_id, attempt.token, len(bodies), bodies, item_opts=opts
        )
        return str(await worker.scripts.run(call))
    stage = worker.keys.staging(uuid.uuid4().hex)
    staged = bodies + (opts or [])
    async with worker.redis.pipeline(transaction=False) as pipe:
        for start in range(0, len(staged), MAX_SCRIPT_ARGS):
            pipe.rpush(stage, *staged[start : start + MAX_SCRIPT_ARGS])
        pipe.pexpire(stage, 60_000)
        call = calls.fan_out(
            worker.keys, now_ms(), attempt.job_id, attempt.token, len(bodies), [], stage, item_opts=opts
        )
        worker.scripts.queue(pipe, call)
        replies = await pipe.execute()
    return str(replies[-1])
