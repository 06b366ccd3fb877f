"""The one owner of the Redis key layout. Nothing else builds a key string.

A `Keys` is one *partition* of a namespace. Every key starts with a hash tag so that everything one job or
one run touches is in one Redis Cluster slot: `{ns}` for the single-partition layout (`partition=None`, the
default and what every deployment so far uses), `{ns.k}` for partition k of a namespace made of several.
The control slot `{ns}` (`control`) holds what belongs to the whole namespace: deploys (flows), the worker
registry, the leader and the triggers (store/cluster_keys.py). With one partition both are `{ns}`.
The Lua scripts take the prefix from the hash tag of their KEYS[1] and build job and run keys with the
same suffixes as `job()` and `run()` below (lua/common.lua); tests pin both.
"""

from __future__ import annotations

import re

from tqflow.errors import StoreError
from tqflow.plan import LEVELS

NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
GROUP = "tqflow"
MAX_KEY_PART = 200  # user-given key parts (queue names, unique keys, dead-letter names)


class KeyPartError(StoreError, ValueError):
    """A user-given part of a key is empty, too long, or holds a character that would break the layout."""


def check_part(what: str, value: str, max_len: int = MAX_KEY_PART) -> str:
    """Validate a user-given key part: non-empty, bounded, no hash-tag braces, no whitespace."""
    if not isinstance(value, str) or not value:
        raise KeyPartError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > max_len:
        raise KeyPartError(f"{what} is {len(value)} characters long; the limit is {max_len}")
    if "{" in value or "}" in value or any(c.isspace() for c in value):
        raise KeyPartError(f"{what} {value[:40]!r} must not contain braces or whitespace")
    return value


def hash_tag(namespace: str, partition: int | str | None = None) -> str:
    """`{ns}`, or `{ns.k}` for partition k: the hash tag every key of that partition starts with (so its
    keys share one Redis Cluster slot)."""
    return "{" + (namespace if partition is None else f"{namespace}.{partition}") + "}"


def scan_patterns(namespace: str) -> tuple[str, str]:
    """SCAN MATCH patterns for every key of a namespace: its control slot and all its partitions."""
    return hash_tag(namespace) + "*", hash_tag(namespace, "*") + "*"


class Keys:
    def __init__(self, namespace: str = "tqflow", partition: int | None = None) -> None:
        if not NAMESPACE_RE.match(namespace):
            raise KeyPartError(
                f"namespace {namespace!r} must be 1-64 characters of letters, digits, '_', '.', ':' or '-'"
            )
        if partition is not None and partition < 0:
            raise KeyPartError(f"partition {partition} must be 0 or more")
        self.namespace = namespace
        self.partition = partition
        self.control = hash_tag(namespace)  # the control slot: deploys, registry, leader, triggers
        self.prefix = hash_tag(namespace, partition)
        self.delayed = f"{self.prefix}:delayed"
        self.delayed_wake = f"{self.prefix}:delayed:wake"
        self.dlq = f"{self.prefix}:dlq"
        self.runs = f"{self.prefix}:runs"
        self.flows = f"{self.control}:flows"
        self.partitions = f"{self.control}:partitions"  # string: N, when made of N partitions (partitions.py)
        self.tasks = f"{self.control}:tasks"  # hash: task name -> what its workers published (catalog.py)
        self.queues = f"{self.prefix}:queues"
        self.dlqs = f"{self.prefix}:dlqs"  # names of the named dead-letter queues
        # standalone jobs waiting for their `depends_on`, by enqueue time (`tqc jobs list --state waiting`)
        self.after_waiting = f"{self.prefix}:after:waiting"
        # the workers' --keep-results (ms): for jobs that end outside a finish (skips, cancels)
        self.keep_results = f"{self.prefix}:keep-results"
        # hash: the deployment's job counters and histogram buckets, added to by every worker (metrics.py)
        self.stats_jobs = f"{self.prefix}:stats:jobs"
        self.done_channel = f"{self.prefix}:done"  # job ids that someone waits for, when they end
        self.cancel_channel = f"{self.prefix}:cancel"  # running job ids to stop
        self.group = GROUP

    def at(self, partition: int) -> Keys:
        """The keys of another partition of this namespace."""
        return Keys(self.namespace, partition)

    def stream(self, queue: str, priority: int) -> str:
        return f"{self.prefix}:q:{queue}:{priority}"

    @staticmethod
    def stream_place(stream: str) -> tuple[str, str]:
        """The queue and level a stream key names (`stream`'s inverse; the level as the key spells it)."""
        queue, _, level = stream[stream.index("}:q:") + 4 :].rpartition(":")
        return queue, level

    def streams(self, queue: str) -> list[str]:
        return [self.stream(queue, level) for level in range(LEVELS)]

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def run(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}"

    def run_done(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}:done"

    def run_signals(self, run_id: str) -> str:
        """hash: signal job name -> payload sent before the run reached the job (delivered when it does)."""
        return f"{self.prefix}:run:{run_id}:signals"

    @property
    def awaiting(self) -> str:
        """zset: signal job id -> since when (ms) it awaits its payload."""
        return f"{self.prefix}:awaiting"

    @property
    def subflows(self) -> str:
        """zset: sub-flow job id -> since when (ms) it waits for a worker to start its child run or to read
        the child's end (the outbox of runtime/subflows.py)."""
        return f"{self.prefix}:subflows"

    def event_key(self, flow: str, trigger: str, digest: str) -> str:
        """string: the run an event trigger's key started, for the key's window (SET NX PX)."""
        return f"{self.prefix}:evkey:{flow}:{trigger}:{digest}"

    def flow(self, name: str) -> str:
        return f"{self.control}:flow:{name}"

    def event_listeners(self, event: str) -> str:
        """set: the deployed flows whose current version has a trigger for `event` (kept by deploy, rollback
        and undeploy; read by emit)."""
        return f"{self.control}:event:{event}"

    @property
    def events_indexed(self) -> str:
        """string: set once the event index holds the flows deployed before it existed."""
        return f"{self.control}:events:indexed"

    def unique(self, key: str) -> str:
        return f"{self.prefix}:u:{key}"

    def staging(self, token: str) -> str:
        return f"{self.prefix}:stage:{token}"

    def submitted(self, lane: str) -> str:
        """The last submit of a client's lane and its reply, kept briefly so that a re-send of that submit
        answers the same (enqueue.lua, runtime/resend.py)."""
        return f"{self.prefix}:sub:{lane}"

    def dead_letter(self, name: str | None) -> str:
        return f"{self.dlq}:{name}" if name else self.dlq

    # Flow control (runtime/limits.py, lua/limits.lua): one bucket or semaphore per limiter and key.
    @property
    def limit_due(self) -> str:
        """zset: NAME|KEY -> ms when the jobs waiting for it may next be admitted (the promoter's timer)."""
        return f"{self.prefix}:limit:due"

    @property
    def limit_keys(self) -> str:
        """zset: NAME|KEY -> ms it was first seen: the limiters' keys, for inspection."""
        return f"{self.prefix}:limit:keys"

    @property
    def limit_defs(self) -> str:
        """hash: limiter name -> the definition (JSON) a job waiting for it carried."""
        return f"{self.prefix}:limit:defs"

    @property
    def limit_layout(self) -> str:
        """string: `set` once the semaphores' holders of the old layout were folded in (limit_holders.lua)."""
        return f"{self.prefix}:limit:layout"

    def limit(self, member: str, part: str) -> str:
        """`member` is NAME|KEY; `part` b (a rate bucket, "TOKENS TIME_US"), s (a semaphore's holders: a
        set of job ids), e (a lower bound of their lease ends: a zset of one member) or w (waiting)."""
        return f"{self.prefix}:limit:{member}:{part}"

    # Fair share (lua/fair.lua): per queue and level, the keys' passes, one list a key, the window's state.
    def fair(self, queue: str, level: int) -> str:
        """zset: fair key -> its pass (the virtual time of its next turn)."""
        return f"{self.prefix}:fair:{queue}:{level}"

    def fair_list(self, queue: str, level: int, key: str) -> str:
        """list: the ids of one fair key's jobs not yet fed onto the stream."""
        return f"{self.prefix}:fair:{queue}:{level}:k:{key}"

    def fair_state(self, queue: str, level: int) -> str:
        """hash: `fed` (its entries on the stream not yet started), `vt` (the pass last served)."""
        return f"{self.prefix}:fair:{queue}:{level}:s"

    # Observability (runtime/attempts.py, runtime/alerts.py) — additive.
    @property
    def leases(self) -> str:
        """zset: job id -> lease deadline (ms) of its running attempt."""
        return f"{self.prefix}:leases"

    def attempts(self, job_id: str) -> str:
        """A capped list of one job's attempts (JSON), newest last."""
        return f"{self.prefix}:job:{job_id}:attempts"

    def alert_sent(self, kind: str, subject: str) -> str:
        """Set NX when an alert goes out, so several monitors send it once."""
        return f"{self.control}:alert:{kind}:{subject}"

    @property
    def alert_cursor(self) -> str:
        """A hash of how far the alert monitors have read (DLQ score, runs being watched)."""
        return f"{self.control}:alert:cursor"
