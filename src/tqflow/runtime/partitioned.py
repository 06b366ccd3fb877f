"""The client's view of a namespace's partitions (runtime/partitions.py): one `Part` per partition (its
keys, connection, scripts, submitter and waiter), where each job goes, and the ids callers see.

The control slot is a `Part` too (index None): in a namespace of one partition, every job and run.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from tqflow.runtime.connection import for_partition
from tqflow.runtime.jobs import (
    BulkItem,
    BulkRejected,
    JobId,
    JobOptions,
    Prepared,
    Refused,
    Submitter,
    dependencies,
)
from tqflow.runtime.partitions import PartitionError, Place, Spread, split_id, unique_partition
from tqflow.runtime.runs import RunInfo
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.payloads import PayloadSettings
from tqflow.runtime.store.scripts import Scripts
from tqflow.runtime.task import Call
from tqflow.runtime.waiter import Waiter


class Part(Place):
    """One partition as a client reaches it."""

    def __init__(
        self, index: int | None, redis: Redis, keys: Keys, scripts: Scripts, settings: PayloadSettings
    ) -> None:
        super().__init__(index, redis, keys, scripts)
        self.submitter = Submitter(redis, keys, scripts, settings)
        self.waiter = Waiter(redis, keys, scripts)

    def rename(self, result: JobId[Any]) -> JobId[Any]:
        """A submission's result with the ids callers see (the job's, and the holder of a unique key)."""
        detail = result.detail
        if result.status == "rejected" and detail.startswith("job "):
            holder = detail.split()[1]
            detail = detail.replace(holder, self.shown(holder), 1)
        elif result.status == "skipped":
            detail = detail.replace(str(result), self.shown(str(result)))
        return JobId(self.shown(str(result)), result.status, detail, result.task)


class Layout:
    """The data partitions of a namespace of several, as one client uses them."""

    def __init__(self, redis: Redis, namespace: str, count: int, settings: PayloadSettings) -> None:
        self.count = count
        self.spread = Spread(count)
        self.parts: list[Part] = []
        for k in range(count):
            client = for_partition(redis, namespace, k)
            self.parts.append(Part(k, client, Keys(namespace, k), Scripts(client), settings))
        self._own = [p.redis for p in self.parts if p.redis is not redis]

    def at(self, job_id: str) -> tuple[Part, str]:
        """The partition of a caller's job id, and the id its scripts know."""
        index, local = split_id(job_id, self.count)
        assert index is not None
        return self.parts[index], local

    def place(self, options: JobOptions, unique_key: str | None) -> tuple[Part, JobOptions]:
        """Where one standalone job goes, and its options with its dependencies' ids in that partition."""
        deps = list(options.depends_on or ())
        index, local = self.spread.place(unique_key, deps)
        if deps:
            options = dataclasses.replace(options, depends_on=tuple(local))
        return self.parts[index], options

    async def close(self) -> None:
        for part in self.parts:
            await part.waiter.close()
        for client in self._own:
            await client.aclose()


def item_placement(item: BulkItem, options: JobOptions, count: int) -> tuple[int | None, BulkItem]:
    """The partition one bulk item must go to (None: any), and the item with its dependencies' ids in
    that partition (a triple whose overrides name `depends_on` or `unique`)."""
    overrides: dict[str, Any] = {}
    if not isinstance(item, Call) and len(item) == 3:
        overrides = dict(item[2])
    unique = overrides.get("unique", options.unique)
    deps_given = overrides.get("depends_on", options.depends_on)
    deps = list(dependencies(deps_given)) if deps_given is not None else []
    key = unique.key if unique is not None else None
    if not deps:
        return (None if key is None else unique_partition(key, count)), item
    index, local = Spread(count).place(key, deps)
    overrides["depends_on"] = local
    if isinstance(item, Call):
        return index, (item, {}, overrides)
    return index, (item[0], item[1], overrides)


async def submit_spread(
    layout: Layout, jobs: Sequence[Prepared | Refused], homes: Sequence[int | None], atomic: bool
) -> list[JobId[Any]]:
    """Send prepared bulk jobs to their partitions: an all-or-nothing submission to one partition (the
    one its unique keys or dependencies name, else the next), a best-effort one to each job's own."""
    if atomic:
        named = {h for h in homes if h is not None}
        if len(named) > 1:
            raise PartitionError(
                f"an all-or-nothing submission is atomic in one partition, and its unique keys and "
                f"dependencies name partitions {sorted(named)}: submit with atomic=False, or in parts"
            )
        part = layout.parts[named.pop() if named else layout.spread.next()]
        try:
            return [part.rename(r) for r in await part.submitter.submit(jobs, atomic=True)]
        except BulkRejected as err:
            err.results = [part.rename(r) for r in err.results]
            raise
    groups: dict[int, list[int]] = {}
    for i, home in enumerate(homes):
        groups.setdefault(home if home is not None else layout.spread.next(), []).append(i)
    results: list[JobId[Any] | None] = [None] * len(jobs)

    async def send(index: int, items: list[int]) -> None:
        part = layout.parts[index]
        sent = await part.submitter.submit([jobs[i] for i in items], atomic=False)
        for i, result in zip(items, sent, strict=True):
            results[i] = part.rename(result)

    await asyncio.gather(*(send(k, items) for k, items in groups.items()))
    return [r if r is not None else JobId("", "error", "not sent") for r in results]


def shown_run(place: Place, info: RunInfo) -> RunInfo:
    """A run read in its partition, with the ids callers see (the run's, its parent job's, its jobs' child
    runs'): a sub-flow's child run lives in its parent's partition."""
    jobs = {
        name: dataclasses.replace(job, child_run=place.shown(job.child_run)) if job.child_run else job
        for name, job in info.jobs.items()
    }
    parent = place.shown(info.parent_job) if info.parent_job else ""
    return dataclasses.replace(info, id=place.shown(info.id), jobs=jobs, parent_job=parent)
