from __future__ import annotations

import redis

from tqflow.runtime.embedded import EmbeddedRedis, find_redis_server


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
