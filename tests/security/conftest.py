"""Private Redis servers with a password, ACL users or TLS, each stopped when its test ends."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tqflow.runtime.embedded import find_redis_server

from servers import ServerFactory, free_port


@pytest.fixture
def tcp_redis(tmp_path: Path) -> Iterator[ServerFactory]:
    """`port = tcp_redis(*extra_args)`: a redis-server on 127.0.0.1 only, killed at test end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, tls: bool = False, ready: Callable[[int], bool] | None = None) -> int:
        port = free_port()
        listen = ["--port", "0", "--tls-port", str(port)] if tls else ["--port", str(port)]
        cmd = [
            find_redis_server(),
            "--bind",
            "127.0.0.1",
            *listen,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            *args,
        ]
        started.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0 and (ready is None or ready(port)):
                    return port
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {port}")

    yield start
    for process in started:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway self-signed certificate for localhost and 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return {"cert": cert, "key": key}
