"""Read the limiters' state (lua/limits.lua) for `tqc limits`, `GET /api/limits`, the dashboard and the
`tqflow_limit_*` metrics: each limiter's keys, how much of each is in use and how many jobs wait."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from tqflow.runtime.limits import describe, plan_of_wire
from tqflow.runtime.store.keys import Keys

MAX_KEYS = 1000  # keys read in one overview (the busiest limiters of a large deployment fit)


class LimitKeyView(BaseModel):
    key: str  # '' for a limiter used without `by`
    in_use: int  # running (and granted) jobs of a concurrency limiter; tokens taken of a rate bucket
    waiting: int  # jobs parked until it admits them
    tokens: float | None = None  # a rate bucket's tokens now
    next_admission_ms: int | None = None  # when the timer next lets waiting jobs go


class LimiterView(BaseModel):
    name: str
    kind: str  # rate | concurrency
    definition: str  # `concurrency(3)`, `rate(100 per 1000 ms, burst=20)`
    capacity: int  # concurrency: the limit; rate: the bucket's size
    in_use: int
    waiting: int
    keys: list[LimitKeyView]


class LimitsOverview(BaseModel):
    limiters: list[LimiterView]
    truncated: bool = False  # more keys than one overview reads


def _member(raw: str) -> tuple[str, str]:
    name, _, key = raw.partition("|")
    return name, key


async def read_limits(redis: Any, keys: Keys, limiter: str | None = None) -> LimitsOverview:
    members = [str(m) for m in await redis.zrange(keys.limit_keys, 0, MAX_KEYS)]
    truncated = len(members) > MAX_KEYS
    members = [m for m in members[:MAX_KEYS] if limiter is None or _member(m)[0] == limiter]
    defs = {str(k): json.loads(v) for k, v in (await redis.hgetall(keys.limit_defs)).items()}
    seconds, micros = await redis.time()
    now_us = int(seconds) * 1_000_000 + int(micros)
    async with redis.pipeline(transaction=False) as pipe:
        for m in members:
            pipe.get(keys.limit(m, "b"))
            pipe.scard(keys.limit(m, "s"))  # holders (a dead worker's until its lease is reclaimed)
            pipe.llen(keys.limit(m, "w"))
            pipe.zscore(keys.limit_due, m)
        replies = await pipe.execute()
    by_name: dict[str, list[LimitKeyView]] = {}
    for i, m in enumerate(members):
        bucket, held, waiting, due = replies[4 * i : 4 * i + 4]
        n, _, t = str(bucket or "").partition(" ")
        name, key = _member(m)
        d = defs.get(name)
        if d is None:
            continue
        plan = plan_of_wire(d)
        view = LimitKeyView(key=key, in_use=int(held), waiting=int(waiting))
        if plan.kind == "rate":
            capacity = plan.burst or plan.rate
            tokens = float(capacity)
            if n and t:
                refill = (now_us - int(t)) * plan.rate / (plan.period_ms * 1000)
                tokens = min(float(capacity), float(n) + refill)
            view.tokens = round(tokens, 3)
            view.in_use = capacity - int(tokens)
        if due is not None:
            view.next_admission_ms = int(due)
        by_name.setdefault(name, []).append(view)
    limiters = []
    for name in sorted(by_name):
        plan = plan_of_wire(defs[name])
        views = by_name[name]
        limiters.append(
            LimiterView(
                name=name,
                kind=plan.kind,
                definition=describe(plan),
                capacity=plan.limit if plan.kind == "concurrency" else (plan.burst or plan.rate),
                in_use=sum(v.in_use for v in views),
                waiting=sum(v.waiting for v in views),
                keys=sorted(views, key=lambda v: (-v.waiting, -v.in_use, v.key)),
            )
        )
    return LimitsOverview(limiters=limiters, truncated=truncated)


async def waiting_jobs(redis: Any, keys: Keys, count: int) -> list[str]:
    """Ids of jobs in state `limited` (waiting for a limiter), up to `count`."""
    ids: list[str] = []
    for m in await redis.zrange(keys.limit_keys, 0, MAX_KEYS - 1):
        if len(ids) >= count:
            break
        ids += [str(i) for i in await redis.lrange(keys.limit(str(m), "w"), 0, count - len(ids) - 1)]
    return ids
