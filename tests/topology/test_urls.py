"""Redis URLs: which ones are accepted, and the one-line refusals."""

from __future__ import annotations

import pytest

from tqflow.runtime.connection import RedisUrlError, parse_url, resolve_url


def test_plain_urls_pass_through() -> None:
    for url in ("redis://localhost:6379/2", "rediss://u:p@h:1/0", "unix:///tmp/r.sock"):
        target = parse_url(url)
        assert (target.kind, target.url) == ("plain", url)


def test_cluster_url_seeds_and_options() -> None:
    target = parse_url("rediss+cluster://user:secret@10.0.0.1:7001,10.0.0.2:7002?ssl_cert_reqs=none")
    assert target.kind == "cluster"
    assert target.seeds == [("10.0.0.1", 7001), ("10.0.0.2", 7002)]
    assert target.url == "rediss://user:secret@10.0.0.1:7001/0?ssl_cert_reqs=none"


def test_sentinel_url_master_and_db() -> None:
    target = parse_url("redis+sentinel://s1:26379,s2:26380,s3/mymaster/3")
    assert (target.kind, target.master) == ("sentinel", "mymaster")
    assert target.seeds == [("s1", 26379), ("s2", 26380), ("s3", 26379)]
    assert target.url.endswith("/3")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://127.0.0.1:7000/1", r"a Redis Cluster has only db 0 \(got db 1\)"),
        ("redis+sentinel://127.0.0.1:26379", "names no master"),
        ("memcached://127.0.0.1:1", "must start with redis://"),
        ("redis+cluster://127.0.0.1:x", "is not host:port"),
    ],
)
def test_refusals_are_one_line(url: str, message: str) -> None:
    with pytest.raises(RedisUrlError, match=message) as err:
        resolve_url(url, {})
    assert "\n" not in str(err.value)


def test_password_is_redacted_in_refusals() -> None:
    with pytest.raises(RedisUrlError) as err:
        parse_url("redis+cluster://u:hunter2@127.0.0.1:7000/4")
    assert "hunter2" not in str(err.value)
