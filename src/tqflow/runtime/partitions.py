"""One namespace spread over N partitions (issue 13; design and limits in docs/cluster.md).

A namespace made with `tqc partitions NS --create N` (`Client.create_partitions`) has N data partitions,
each a hash tag of its own (`{ns.0}` … `{ns.N-1}`, store/keys.py), which a Redis Cluster spreads over its
shards; the count is kept in the control slot (`{ns}:partitions`) and never changes. A namespace without
it has one partition, the control slot `{ns}` itself: exactly the layout of every namespace so far.

What goes where: standalone jobs go to the data partitions, round robin per producer, or by the hash of
their unique key (so a key is checked in one place and uniqueness stays global), or to the partition of
the jobs they depend on. A flow run is pinned to one data partition when it starts (`RunPlaces`): round
robin per client for `start_run`, the hash of its event key for a keyed event, the hash of its run id for
a cron tick or a backfill; its jobs, fan-out children, sub-flow children, signals, done list and its entry
in the partition's runs index all live there, so every script of the run is atomic in one slot. Deploys,
schedules, triggers and ticks, the registry and the leader stay in the control slot. A job's or run's id
names its partition, `pK:LOCAL` (LOCAL is the id the partition's scripts know), so finding one needs no
index; an id without the prefix is the control slot's (runs started before partitions held runs).
Workers serve every partition of their queues (worker/worker.py).
"""

from __future__ import annotations

import itertools
import random
import re
import zlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from tqflow.errors import StoreError
from tqflow.runtime.connection import for_partition
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts

MAX_PARTITIONS = 256
PARTITION_ID = re.compile(r"^p(\d{1,3}):(.+)$")


class PartitionError(StoreError, ValueError):
    """A partition count that is out of range, or differs from the one the namespace was made with; a job
    id or a submission that does not fit the namespace's partitions."""


def external_id(partition: int | None, local: str) -> str:
    """The id a caller sees: the partition's own id in a namespace of one partition, else `pK:LOCAL`."""
    return local if partition is None or not local else f"p{partition}:{local}"


def split_id(job_id: str, count: int) -> tuple[int | None, str]:
    """(partition, the partition's own id) of a caller's job id; (None, id) with one partition."""
    if count <= 1:
        return None, job_id
    found = PARTITION_ID.match(job_id)
    if found is None or int(found[1]) >= count:
        raise PartitionError(
            f"job id {job_id[:80]!r} names no partition of this namespace's {count} (ids look like p0:…)"
        )
    return int(found[1]), found[2]


def unique_partition(key: str, count: int) -> int:
    """The partition that owns a unique key: the same for every producer (CRC-32 of the key)."""
    return zlib.crc32(key.encode()) % count


def check_count(count: int) -> int:
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_PARTITIONS:
        raise PartitionError(
            f"a partition count must be a whole number from 1 to {MAX_PARTITIONS}, got {count!r}"
        )
    return count


def parse_count(raw: Any, keys: Keys) -> int:
    if raw is None:
        return 1
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    if not text.isdigit() or not 1 <= int(text) <= MAX_PARTITIONS:
        raise PartitionError(f"{keys.partitions} holds {text[:40]!r}, not a partition count")
    return int(text)


async def count_of(redis: Any, keys: Keys) -> int:
    """How many partitions the namespace has (1 when it was never made with more)."""
    return parse_count(await redis.get(keys.partitions), keys)


async def create(redis: Any, keys: Keys, count: int) -> int:
    """Make the namespace one of `count` partitions; the same count again changes nothing, another one
    is refused: changing N needs a new namespace. Make it before the first standalone job is sent."""
    check_count(count)
    if await redis.set(keys.partitions, count, nx=True):
        return count
    have = await count_of(redis, keys)
    if have != count:
        raise PartitionError(
            f"namespace {keys.namespace} has {have} partitions; the count is fixed when it is made "
            "(use a new namespace, drain the old one, then switch)"
        )
    return count


class Spread:
    """Where one producer's standalone jobs go: round robin from a random start (so producers do not all
    begin on partition 0), a unique key's partition for a job that has one, the partition of its
    dependencies for a job that depends on others."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._next = itertools.count(random.randrange(count))

    def next(self) -> int:
        return next(self._next) % self.count

    def place(self, unique_key: str | None, depends_on: Sequence[str]) -> tuple[int, list[str]]:
        """(partition, the dependencies' own ids) for one job."""
        homes = {split_id(dep, self.count) for dep in depends_on}
        parts = {p for p, _ in homes}
        if len(parts) > 1:
            raise PartitionError(
                f"depends_on names jobs of partitions {sorted(p for p in parts if p is not None)}: "
                "a job and the jobs it depends on must be in one partition"
            )
        local = [split_id(dep, self.count)[1] for dep in depends_on]
        if parts:
            home = parts.pop()
            assert home is not None
            owner = None if unique_key is None else unique_partition(unique_key, self.count)
            if owner is not None and owner != home:
                raise PartitionError(
                    f"unique key {unique_key!r} belongs to partition {owner}, its dependencies to "
                    f"partition {home}: a job with both must find them in one partition"
                )
            return home, local
        if unique_key is not None:
            return unique_partition(unique_key, self.count), local
        return self.next(), local


class Place:
    """One partition as a caller reaches it: its index (None: the control slot), keys, connection and
    scripts."""

    def __init__(self, index: int | None, redis: Redis, keys: Keys, scripts: Scripts) -> None:
        self.index, self.redis, self.keys, self.scripts = index, redis, keys, scripts

    def shown(self, local: str) -> str:
        return external_id(self.index, local)


class RunPlaces:
    """Where a namespace's runs live: the control slot alone in a namespace of one partition; else each
    new run in one data partition (its id `pK:LOCAL`), and runs without the prefix in the control slot."""

    def __init__(self, control: Place, data: Sequence[Place] = ()) -> None:
        self.control, self.data = control, list(data)
        self._spread = Spread(len(self.data)) if self.data else None

    @property
    def all(self) -> list[Place]:
        """Every place that can hold runs: the control slot first, then the data partitions."""
        return [self.control, *self.data]

    def at(self, run_id: str) -> tuple[Place, str]:
        """The place of a caller's run (or run job) id, and the id its scripts know."""
        if not self.data or PARTITION_ID.match(run_id) is None:
            return self.control, run_id
        index, local = split_id(run_id, len(self.data))
        assert index is not None
        return self.data[index], local

    def pick(self) -> Place:
        """A new run's place: the next data partition, round robin from a random start."""
        return self.data[self._spread.next()] if self._spread is not None else self.control

    def hashed(self, text: str) -> Place:
        """The place that owns `text` (an event key, a derived run id): the same for every caller."""
        return self.data[unique_partition(text, len(self.data))] if self.data else self.control

    async def close(self) -> None:
        for place in self.data:
            if place.redis is not self.control.redis:
                await place.redis.aclose()


async def run_places(redis: Redis, keys: Keys, scripts: Scripts | None = None) -> RunPlaces:
    """The run places of `keys`' namespace, read now (data partitions get their own routed connection on a
    cluster: `close()` ends them)."""
    control = Place(None, redis, Keys(keys.namespace), scripts or Scripts(redis))
    count = await count_of(redis, keys)
    if count <= 1:
        return RunPlaces(control)
    data = []
    for k in range(count):
        client = for_partition(redis, keys.namespace, k)
        data.append(Place(k, client, Keys(keys.namespace, k), Scripts(client)))
    return RunPlaces(control, data)
