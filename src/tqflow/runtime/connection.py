"""Connecting to Redis: the URL from the command line or TQFLOW_REDIS_URL, hiredis when present.

URLs:
- `redis://[user:pass@]host:port[/db]`, `rediss://…` (TLS), `unix:///path/redis.sock`: one server;
- `redis+cluster://host:port[,host:port…]`, `rediss+cluster://…`: a Redis Cluster, any of its nodes as seeds;
- `redis+sentinel://host:port[,host:port…]/MASTER[/db]`, `rediss+sentinel://…`: the master Sentinel names.

A namespace lives in one hash slot (`{ns}`), so a cluster or sentinel connection is a connection to one node
at a time: the node that serves the namespace's slot (the client pins its namespace with `pin`), or the
master the sentinels name. Every new connection of the pool asks the topology where that is (CLUSTER SLOTS
of a known node, SENTINEL GET-MASTER-ADDR-BY-NAME); a command that gets MOVED, ASK, TRYAGAIN, CLUSTERDOWN,
READONLY or a connection error marks the topology stale and is retried (backing off up to ~30 s, which
covers a failover) on a connection to wherever the slot or master is now. Scripts, pipelines, blocking reads
and pub/sub all work unchanged: they run on the namespace's node.

A plain URL that points at a cluster node is refused with one line that says where the namespace's slot is.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio.connection as async_connection
import redis.connection as sync_connection
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as SyncRetry

from tqflow.errors import StoreError, UsageError
from tqflow.runtime import replication
from tqflow.runtime.packing import packing_class
from tqflow.runtime.replication import NONE as NO_WAIT
from tqflow.runtime.replication import Replication
from tqflow.runtime.store.keys import hash_tag

URL_ENV = "TQFLOW_REDIS_URL"
MAX_CONNECTIONS_ENV = "TQFLOW_REDIS_MAX_CONNECTIONS"
DEFAULT_MAX_CONNECTIONS = 256
POOL_WAIT_S = 60  # a command waits this long for a free connection before it fails
SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
)
# A failover takes the node timeout plus an election (~2 s with a 1 s node timeout, ~20 s with the default
# 15 s; a sentinel election that splits waits twice its failover-timeout): a command is retried for about
# 60 s before its error reaches the caller.
RETRIES = 128
REDIRECTS = (MovedError, AskError, TryAgainError, ClusterDownError, ReadOnlyError)
RETRIED = (RedisConnectionError, RedisTimeoutError, *REDIRECTS)
PROBE_TIMEOUT_S = 2.0
REPLICATION_OPTIONS = ("wait_replicas", "wait_timeout_ms")  # ours, taken out of the URL's query
REFRESH_EVERY_S = 0.05  # at most one topology query per this interval, however many connections fail


class RedisUrlError(StoreError, ValueError):
    """A Redis URL that cannot work: a plain URL into a cluster, a db other than 0 on a cluster, …"""


class ForeignSlotError(StoreError, ResponseError):
    """A key of a slot this cluster connection is not pinned to (another namespace or partition): not retried,
    since the connection goes to its own namespace's node only."""


def resolve_url(explicit: str | None, environ: Mapping[str, str]) -> str | None:
    """The URL to use, or None when an embedded server should be started."""
    url = explicit or environ.get(URL_ENV) or None
    if url is not None:
        parse_url(url)
    return url


@dataclass
class Target:
    """What a URL names: `kind` is plain, cluster or sentinel."""

    kind: str
    url: str  # a plain redis://, rediss:// or unix:// URL with the options (the first seed's, for topologies)
    seeds: list[tuple[str, int]] = field(default_factory=list)
    master: str = ""
    replication: Replication = NO_WAIT  # `?wait_replicas=N&wait_timeout_ms=T` (runtime/replication.py)


def parse_url(url: str) -> Target:
    parts = urlsplit(url)
    scheme = parts.scheme
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in REPLICATION_OPTIONS}
    try:
        wait = replication.from_options(ours.get("wait_replicas"), ours.get("wait_timeout_ms"))
    except UsageError as err:
        raise RedisUrlError(f"Redis URL {redact(url)!r}: {err}") from None
    if ours:  # redis-py refuses query options it does not know
        parts = parts._replace(query=urlencode([(k, v) for k, v in query if k not in REPLICATION_OPTIONS]))
        url = urlunsplit(parts)
    if scheme not in SCHEMES:
        raise RedisUrlError(
            f"Redis URL {redact(url)!r} must start with redis://, rediss://, unix://, redis+cluster://, "
            "rediss+cluster://, redis+sentinel:// or rediss+sentinel://"
        )
    if "+" not in scheme:
        return Target("plain", url, replication=wait)
    base, kind = scheme.split("+")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    seeds = []
    for host_port in hosts.split(","):
        host, _, port = host_port.rpartition(":")
        if not host:
            host, port = host_port, "26379" if kind == "sentinel" else "6379"
        try:
            seeds.append((host.strip("[]"), int(port)))
        except ValueError:
            raise RedisUrlError(f"Redis URL {redact(url)!r}: {host_port!r} is not host:port") from None
    if not seeds or not seeds[0][0]:
        raise RedisUrlError(f"Redis URL {redact(url)!r} names no host")
    path = [unquote(p) for p in parts.path.split("/") if p]
    master, db = "", "0"
    if kind == "sentinel":
        if not path:
            raise RedisUrlError(
                f"Redis URL {redact(url)!r} names no master: redis+sentinel://host:port/MASTER"
            )
        master, db = path[0], (path[1] if len(path) > 1 else "0")
    elif path:
        db = path[0]
    if kind == "cluster" and db != "0":
        raise RedisUrlError(f"Redis URL {redact(url)!r}: a Redis Cluster has only db 0 (got db {db})")
    netloc = (userinfo + "@" if userinfo else "") + f"{seeds[0][0]}:{seeds[0][1]}"
    plain = urlunsplit((base, netloc, f"/{db}", parts.query, ""))
    return Target(kind, plain, seeds, master, wait)


# -- topologies ------------------------------------------------------------------------------------------


class Topology:
    """Where the pool's connections go: the node serving the pinned slots (cluster) or the master (sentinel).

    `address()` / `address_sync()` answer from what is known, asking the topology first when it is stale;
    `failed(address, error)` is told about every redirect and connection error."""

    def __init__(self, target: Target, connect_kwargs: dict[str, Any]) -> None:
        self.target = target
        self.kind = target.kind
        self.nodes: list[tuple[str, int]] = list(target.seeds)  # known nodes (cluster) or sentinels
        self.slots: dict[int, str] = {}  # pinned slot -> namespace
        self.current: tuple[str, int] | None = None
        self.stale = True
        self.refreshed = 0.0
        self.kwargs = {k: v for k, v in connect_kwargs.items() if k in _PROBE_OPTIONS}
        self.kwargs.update(socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S)
        if target.url.startswith("rediss:"):
            self.kwargs["ssl"] = True
        self._lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None

    def pin(self, namespace: str, partition: str | None = None) -> None:
        tag = namespace if partition is None else f"{namespace}.{partition}"
        slot = key_slot(hash_tag(namespace, partition).encode())
        if slot not in self.slots:
            self.slots[slot] = tag
            self.stale = True

    def foreign(self, error: BaseException) -> BaseException:
        """The error to raise: a MOVED for a slot this connection is not pinned to is a ForeignSlotError."""
        if isinstance(error, MovedError) and self.slots and error.slot_id not in self.slots:
            pinned = ", ".join(f"{name} (slot {slot})" for slot, name in self.slots.items())
            return ForeignSlotError(
                f"slot {error.slot_id} is on {error.host}:{error.port}, but this connection serves {pinned}: "
                "use a connection pinned to that namespace or partition (connection.pin)"
            )
        return error

    def failed(self, address: tuple[str, int], error: BaseException) -> None:
        if address != self.current:
            return  # an error of a connection to where the slot was: already known
        if isinstance(error, MovedError) and (not self.slots or error.slot_id in self.slots):
            host, _, port = error.host, None, error.port
            self.current = (str(host), int(port))
            if self.current not in self.nodes:
                self.nodes.append(self.current)
            self.stale = len(self.slots) > 1  # other pinned slots: check they are there too
            return
        self.stale = True

    # The queries: the same for both I/O flavours, made on a short-lived sync client (a topology query is
    # rare: a new connection after an error, or the first one).

    def address_sync(self) -> tuple[str, int]:
        with self._lock:
            if self.current is None or self.stale:
                self._refresh()
            assert self.current is not None
            return self.current

    async def address(self) -> tuple[str, int]:
        if self.current is not None and not self.stale:
            return self.current
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        async with self._async_lock:
            if self.current is None or self.stale:
                await asyncio.to_thread(self.address_sync)
            assert self.current is not None
            return self.current

    def _refresh(self) -> None:
        wait = self.refreshed + REFRESH_EVERY_S - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self.refreshed = time.monotonic()
        errors: list[str] = []
        # The other nodes first: the current one is the one that just failed (when one did).
        order = [n for n in self.nodes if n != self.current] + ([self.current] if self.current else [])
        for node in order:
            try:
                found = self._ask(node)
            except RedisUrlError:
                raise
            except (RedisError, OSError) as err:
                errors.append(f"{node[0]}:{node[1]}: {err}")
                continue
            if found is not None:
                self.current, self.stale = found, False
                return
        what = f"master {self.target.master!r}" if self.kind == "sentinel" else "the namespace's slot"
        raise RedisConnectionError(
            f"no {self.kind} node says where {what} is: " + "; ".join(errors or ["no answer"])
        )

    def _ask(self, node: tuple[str, int]) -> tuple[str, int] | None:
        with redis.Redis(node[0], node[1], **self.kwargs) as probe:
            if self.kind == "sentinel":
                reply = probe.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.target.master)
                if not reply:
                    return None
                return (_text(reply[0]), int(reply[1]))
            ranges = probe.execute_command("CLUSTER", "SLOTS")
        owners: dict[int, tuple[str, int]] = {}
        for low, high, master, *replicas in ranges:
            address = (_text(master[0]) or node[0], int(master[1]))
            for member in (master, *replicas):
                known = (_text(member[0]) or node[0], int(member[1]))
                if known not in self.nodes:
                    self.nodes.append(known)
            for slot in self.slots:
                if int(low) <= slot <= int(high):
                    owners[slot] = address
        if not self.slots:
            return self.current or node
        if len(owners) < len(self.slots):
            return None  # this node knows no owner for a pinned slot (CLUSTERDOWN): ask another
        places = set(owners.values())
        if len(places) > 1:
            where = ", ".join(
                f"{self.slots[s]} (slot {s}) on {h}:{p}" for s, (h, p) in sorted(owners.items())
            )
            raise RedisUrlError(
                f"one connection serves namespaces on different cluster nodes: {where}; "
                "open one client per namespace"
            )
        return places.pop()


_PROBE_OPTIONS = (
    "username",
    "password",
    "ssl",
    "ssl_keyfile",
    "ssl_certfile",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_check_hostname",
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _AsyncRouted:
    """Mixed into a redis.asyncio connection class: connect where the topology says, tell it of errors."""

    topology: Topology

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        conn: Any = self
        if not conn.is_connected:
            conn.host, conn.port = await self.topology.address()
        try:
            # The socket connect is retried by the command's retry, which comes back here to route again.
            await super().connect_check_health(check_health, False)  # type: ignore[misc]
        except (RedisConnectionError, RedisTimeoutError) as err:
            self.topology.failed((conn.host, conn.port), err)
            raise

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        conn: Any = self
        try:
            return await super().read_response(*args, **kwargs)  # type: ignore[misc]
        except RETRIED as err:
            self.topology.failed((conn.host, conn.port), err)
            raise self.topology.foreign(err) from err


class _SyncRouted:
    """The same for a sync redis-py connection class."""

    topology: Topology

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        conn: Any = self
        if conn._sock is None:
            conn.host, conn.port = self.topology.address_sync()
        try:
            super().connect_check_health(check_health, False)  # type: ignore[misc]
        except (RedisConnectionError, RedisTimeoutError) as err:
            self.topology.failed((conn.host, conn.port), err)
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        conn: Any = self
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        except RETRIED as err:
            self.topology.failed((conn.host, conn.port), err)
            raise self.topology.foreign(err) from err


class _ClusterCheck:
    """Mixed into a plain URL's connection class: the first connection of the pool checks that the
    server is not a cluster node (one INFO), and refuses with where the namespace's slot is if it is."""

    namespaces: list[str]
    checked: list[bool]

    def _cluster_error(self, info: str, slots: Any) -> RedisUrlError | None:
        if "cluster_enabled:1" not in info:
            return None
        conn: Any = self
        here = f"{conn.host}:{conn.port}" if hasattr(conn, "port") else "this server"
        if not self.namespaces:
            return RedisUrlError(f"{here} is a Redis Cluster node; use redis+cluster://{here}")
        namespace = self.namespaces[0]
        slot = key_slot(hash_tag(namespace).encode())
        owner = "no node (the cluster is down)"
        for low, high, master, *_ in slots or []:
            if int(low) <= slot <= int(high):
                owner = f"{_text(master[0]) or conn.host}:{int(master[1])}"
        return RedisUrlError(
            f"slot {slot} of namespace {namespace} is on {owner}; use redis+cluster://{here}"
        )


class _AsyncClusterCheck(_ClusterCheck):
    async def on_connect_check_health(self, check_health: bool = True) -> None:
        await super().on_connect_check_health(check_health)  # type: ignore[misc]
        if self.checked[0]:
            return
        conn: Any = self
        await conn.send_command("INFO", "cluster")
        try:
            info = _text(await conn.read_response())
        except ResponseError:  # INFO not allowed (ACLs, renamed commands): nothing to check
            self.checked[0] = True
            return
        slots = None
        if "cluster_enabled:1" in info:
            await conn.send_command("CLUSTER", "SLOTS")
            slots = await conn.read_response()
        error = self._cluster_error(info, slots)
        if error is not None:
            await conn.disconnect()
            raise error
        self.checked[0] = True


class _SyncClusterCheck(_ClusterCheck):
    def on_connect_check_health(self, check_health: bool = True) -> None:
        super().on_connect_check_health(check_health)  # type: ignore[misc]
        if self.checked[0]:
            return
        conn: Any = self
        conn.send_command("INFO", "cluster")
        try:
            info = _text(conn.read_response())
        except ResponseError:  # INFO not allowed (ACLs, renamed commands): nothing to check
            self.checked[0] = True
            return
        slots = None
        if "cluster_enabled:1" in info:
            conn.send_command("CLUSTER", "SLOTS")
            slots = conn.read_response()
        error = self._cluster_error(info, slots)
        if error is not None:
            conn.disconnect()
            raise error
        self.checked[0] = True


# -- pools -----------------------------------------------------------------------------------------------


def connect(url: str, max_connections: int | None = None, *, namespace: str | None = None) -> Redis:
    """A client whose pool waits for a free connection instead of failing when a busy worker's jobs, its
    batched scripts and its background loops all hold one at once (redis-py's own pool raises at 100).
    `namespace` pins a cluster connection to that namespace's slot (`Client` and `Worker` pin theirs)."""
    target = parse_url(url)
    kwargs: dict[str, Any] = dict(async_connection.parse_url(target.url))
    kwargs.update(_pool_options(max_connections))
    base = packing_class(kwargs.pop("connection_class", async_connection.Connection))  # runtime/packing.py
    if target.kind == "plain":
        kwargs["connection_class"] = type(
            f"Checked{base.__name__}", (_AsyncClusterCheck, base), {"namespaces": [], "checked": [False]}
        )
    else:
        topology = Topology(target, kwargs)
        kwargs["connection_class"] = type(
            f"Routed{base.__name__}", (_AsyncRouted, base), {"topology": topology}
        )
        kwargs["retry"] = AsyncRetry(ExponentialBackoff(cap=0.5, base=0.01), RETRIES, RETRIED)
    client = Redis.from_pool(BlockingConnectionPool(**kwargs))
    replication.attach(client, target.replication)
    if namespace is not None:
        pin(client, namespace)
    return client


def connect_sync(
    url: str, max_connections: int | None = None, *, namespace: str | None = None
) -> redis.Redis:
    """The same, for sync code (runtime/sync.py): redis-py's sync client, same pool settings."""
    target = parse_url(url)
    parse: Any = sync_connection.parse_url
    kwargs: dict[str, Any] = dict(parse(target.url))
    kwargs.update(_pool_options(max_connections))
    base = kwargs.pop("connection_class", sync_connection.Connection)
    if target.kind == "plain":
        kwargs["connection_class"] = type(
            f"Checked{base.__name__}", (_SyncClusterCheck, base), {"namespaces": [], "checked": [False]}
        )
    else:
        topology = Topology(target, kwargs)
        kwargs["connection_class"] = type(
            f"Routed{base.__name__}", (_SyncRouted, base), {"topology": topology}
        )
        kwargs["retry"] = SyncRetry(ExponentialBackoff(cap=0.5, base=0.01), RETRIES, RETRIED)
    pool_class: Any = redis.BlockingConnectionPool
    client = redis.Redis.from_pool(pool_class(**kwargs))  # owns the pool: close() disconnects it
    replication.attach(client, target.replication)
    if namespace is not None:
        pin(client, namespace)
    return client


def pin(client: Redis | redis.Redis, namespace: str, partition: str | None = None) -> None:
    """Route a cluster connection to the node serving `namespace`'s slot; for a plain one, name the
    namespace in the error that refuses a cluster node. Nothing for other clients."""
    cls: Any = client.connection_pool.connection_class
    topology = getattr(cls, "topology", None)
    if isinstance(topology, Topology):
        topology.pin(namespace, partition)
    elif isinstance(getattr(cls, "namespaces", None), list) and namespace not in cls.namespaces:
        cls.namespaces.append(namespace)


def for_partition(client: Any, namespace: str, partition: int) -> Any:
    """A client for one partition of a namespace (runtime/partitions.py): the same client for one server
    or a Sentinel master (every partition is there); for a Redis Cluster, a new client, with the same
    options, whose pool is routed to the node serving that partition's slot (its owner closes it)."""
    cls: Any = client.connection_pool.connection_class
    topology = getattr(cls, "topology", None)
    if not isinstance(topology, Topology) or topology.kind != "cluster":
        return client
    routed = Topology(topology.target, dict(topology.kwargs))
    routed.nodes = list(topology.nodes)
    made = type(cls.__name__, cls.__bases__, {"topology": routed})
    pool = client.connection_pool
    options = dict(pool.connection_kwargs)
    new_pool = type(pool)(
        connection_class=made, max_connections=pool.max_connections, timeout=pool.timeout, **options
    )
    sibling = type(client).from_pool(new_pool)
    replication.attach(sibling, replication.of(client))
    pin(sibling, namespace, str(partition))
    return sibling


def topology_of(client: Redis | redis.Redis) -> Topology | None:
    return getattr(client.connection_pool.connection_class, "topology", None)


def _pool_options(max_connections: int | None) -> dict[str, Any]:
    limit = max_connections or int(os.environ.get(MAX_CONNECTIONS_ENV, DEFAULT_MAX_CONNECTIONS))
    return {
        "max_connections": limit,
        "timeout": POOL_WAIT_S,
        "decode_responses": True,
        # Bytes that are not UTF-8 (garbage written to Redis by anyone) decode to lone surrogates instead of
        # raising in the middle of a reply (F15: one such entry failed every fetch of its batch); they
        # encode back to the same bytes, so ids read this way still name their keys.
        "encoding_errors": "surrogateescape",
        "health_check_interval": 30,
    }


def carry_bytes(client: Any) -> None:
    """Let a client made by the caller (`Redis(..., decode_responses=True)`) read binary payload bodies
    (runtime/store/payloads.py), as `connect`'s do: its new connections decode with `surrogateescape`
    instead of raising on bytes that are not UTF-8. A client that answers bytes is left as it is."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if not isinstance(kwargs, dict) or not kwargs.get("decode_responses"):
        return
    if kwargs.get("encoding_errors", "strict") == "strict":
        kwargs["encoding_errors"] = "surrogateescape"


def redact(url: str) -> str:
    """The URL with any password replaced, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
