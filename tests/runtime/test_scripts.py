"""The scripts as one function library (FCALL) and as EVALSHA scripts (store/scripts.py): the library holds
every script, a server that lost it gets it again, and `TQFLOW_SCRIPTS=eval` keeps EVALSHA with the same
answers."""

from __future__ import annotations

import re
import uuid
from importlib import resources

import pytest
from redis.asyncio import Redis

from tqflow.runtime.store import calls
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import (
    LIBRARY_SCRIPTS,
    Scripts,
    allows_oom,
    function_name,
    library_name,
    prelude,
)

INCLUDED = {"common", "flow_keys", "fair", "limits", "cluster_fire_fence", "event_fence"}


def test_the_library_holds_every_script() -> None:
    files = {
        path.name.removesuffix(".lua")
        for path in resources.files("tqflow.runtime.store").joinpath("lua").iterdir()
        if path.name.endswith(".lua")
    }
    assert files - INCLUDED <= set(LIBRARY_SCRIPTS)
    assert {"cluster_fire", "event_run"} <= set(LIBRARY_SCRIPTS)


def test_what_runs_when_redis_is_full() -> None:
    # F14: heartbeats and the ends of attempts run when full; new work is refused whole
    assert {n for n in ("finish", "finish_many", "cluster_heartbeat", "cancel") if allows_oom(n)} == {
        "finish",
        "finish_many",
        "cluster_heartbeat",
        "cancel",
    }
    assert not any(allows_oom(n) for n in ("enqueue", "fetch", "start_many", "submit_run", "cluster_reclaim"))


def enqueue_call(keys: Keys, head: list[object], fields: list[object]) -> calls.ScriptCall:
    """One enqueue call (its own nonce: a call sent again would answer the first one's reply)."""
    return calls.enqueue(keys, "test", uuid.uuid4().hex, head, fields)


async def server_major(redis: Redis) -> int:
    return int(str((await redis.info("server"))["redis_version"]).split(".")[0])


async def test_functions_are_loaded_once_and_again_when_lost(redis: Redis, namespace: str) -> None:
    if await server_major(redis) < 7:
        pytest.fail("this suite's Redis must have functions (Redis 7+ or Valkey)")
    keys = Keys(namespace)
    scripts = Scripts(redis)
    call = enqueue_call(keys, [1, "each", 1000], [4, "t.noop", "default", 2, "", ".0|J-|1"])
    first = await scripts.run(call)
    assert scripts.functions is True and first[0] == "done" and re.fullmatch(r"\d+-\d+", first[1])
    listed = await redis.function_list(library=library_name())
    library = dict(zip(listed[0][::2], listed[0][1::2], strict=True))  # RESP2: name, value, …
    names = {dict(zip(f[::2], f[1::2], strict=True))["name"] for f in library["functions"]}
    assert {function_name(n) for n in LIBRARY_SCRIPTS} <= names
    await redis.execute_command("FUNCTION", "DELETE", library_name())  # as a restart without persistence
    second = await scripts.run(
        enqueue_call(keys, [1, "each", 1000], [4, "t.noop", "default", 2, "", ".0|J-|1"])
    )
    assert second[0] == "done" and second[1] > first[1]
    bad = enqueue_call(Keys(namespace), [1, "each", 1000], [4, "t.noop", "default", 2, "", ".0|J-|1"])
    bad.keys[0] = "no-hash-tag"
    # refused by the function's bind, or (a cluster) by Redis before it runs: the keys span two slots
    with pytest.raises(Exception, match=r"KEYS\[1\] must be a tqflow key|don't hash to the same slot"):
        await scripts.run(bad)
    assert await redis.xlen(keys.stream("default", 2)) == 2


async def test_eval_mode_gives_the_same_answers(
    redis: Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TQFLOW_SCRIPTS", "eval")
    keys = Keys(namespace)
    scripts = Scripts(redis)
    assert scripts.functions is False
    await scripts.ensure_loaded()
    spec = [4, "t.noop", "default", 2, ""]
    reply = await scripts.run(enqueue_call(keys, [1, "each", 3], [*spec, ".0|J-|1234"]))
    assert reply == ["done", "error:payload of 7 bytes is over the limit"]  # "J-|1234"
    reply = await scripts.run(enqueue_call(keys, [1, "each", 1000], [*spec, ".0|J-|1"]))
    assert re.fullmatch(r"\d+-\d+", reply[1])  # a lean job's status: its entry id
    assert await redis.xlen(keys.stream("default", 2)) == 1


# The prelude's top level runs once per library load, not once per call: what it keeps must be constant.
CONSTANTS = {"BAD_KEYS", "PUBLISH", "GROUP", "TERMINAL", "DEFAULT_KEEP_MS", "TRANSIENT", "NOBODY"}
CONSTANTS |= {"FAIR_WINDOW", "GRANT_MS", "LEVEL", "LEAN_ID", "IN_LIBRARY", "PLACES_KEPT"}


def test_the_prelude_keeps_no_state_between_calls() -> None:
    """A top-level `local x = prefix .. …` or a table a call fills would leak from one call (and namespace)
    to the next once loaded as a function library: such names are declared bare and set by bind()."""
    problems = []
    for line in prelude().split("\n"):
        match = re.match(r"^local ([A-Za-z_][\w, ]*?)\s*=\s*(.*)$", line)
        if not match or line.startswith("local function"):
            continue
        names, value = match.group(1), match.group(2)
        if "prefix" in value or ("{" in value and names not in CONSTANTS) or names not in CONSTANTS:
            problems.append(line)
    assert problems == []
    bind = prelude().split("local function bind")[1].split("\nend\n")[0]
    assert "lim_specs, lim_batch" in bind and "fair_refill, fair_touched =" in bind


@pytest.mark.parametrize("mode", ["all", "each"])
async def test_enqueue_reads_every_row_shape_of_a_page(redis: Redis, namespace: str, mode: str) -> None:
    """A page's rows: lean ones of a one-digit spec (read by their bytes), of a two-digit spec, with options,
    and a job with an id; each lands where its spec says, and a payload over the limit fails (all: aborts)."""
    keys, scripts = Keys(namespace), Scripts(redis)
    specs: list[object] = []
    for n in range(12):
        specs += [f"t.s{n}", f"q{n}", 2, '{"mr":2}' if n == 3 else ""]
    rows = [".0|J-|0", ".11|J-|11", ".3|J-|3", "abcdefghijklmnop9|J-|9", ".1|J-|1"]
    reply = await scripts.run(enqueue_call(keys, [1, mode, 1000], [len(specs), *specs, *rows]))
    assert reply[0] == "done" and reply[4] == "ok" and all(re.fullmatch(r"\d+-\d+", s) for s in reply[1:4])
    for n, eid in ((0, reply[1]), (11, reply[2]), (3, reply[3]), (1, reply[5])):
        [(_, fields)] = await redis.xrange(keys.stream(f"q{n}", 2), eid, eid)
        assert fields == {"t": f"t.s{n}", "p": f"J-|{n}", **({"o": '{"mr":2}'} if n == 3 else {})}
    assert await redis.hget(keys.job("abcdefghijklmnop"), "task") == "t.s9"
    big = [".0|J-|0", ".0|J-|" + "x" * 50, ".2|J-|2"]
    reply = await scripts.run(enqueue_call(keys, [1, mode, 20], [len(specs), *specs, *big]))
    assert reply[2] == "error:payload of 53 bytes is over the limit"
    if mode == "all":
        assert reply[0] == "aborted" and await redis.xlen(keys.stream("q2", 2)) == 0
    else:
        assert reply[0] == "done" and await redis.xlen(keys.stream("q2", 2)) == 1


async def test_a_new_client_loads_the_library_only_when_the_server_lacks_it() -> None:
    """A FUNCTION LOAD sends the whole library (≈ 170 KB), so a new process (a `tqc run`, a short-lived
    producer) looks before it loads. On a private server: it counts the server's FUNCTION LOADs and
    flushes its functions."""
    import redis as sync_redis

    from tqflow.runtime.client import Client
    from tqflow.runtime.embedded import EmbeddedRedis
    from tqflow.runtime.registry import load_tasks
    from tqflow.runtime.sync import SyncClient

    from helpers import FLOWS

    load_tasks(["job_tasks"], [FLOWS])
    import job_tasks as jt

    with EmbeddedRedis() as server:
        admin = sync_redis.Redis.from_url(server.url, decode_responses=True)

        def loads() -> int:
            stats = admin.info("commandstats")
            return int(stats.get("cmdstat_function|load", {}).get("calls", 0))

        async def fresh_client(many: bool = False) -> None:
            client = Client.from_url(server.url, "probe")
            try:
                if many:  # the pipelined path (ensure_loaded)
                    await client.enqueue_many([(jt.add, {"x": i}) for i in range(3)])
                else:
                    await client.enqueue(jt.add, x=1)
            finally:
                await client.close()

        await fresh_client()
        assert loads() == 1  # the server had no library: loaded once
        await fresh_client()
        await fresh_client(many=True)
        with SyncClient.from_url(server.url, "probe") as sync_client:
            sync_client.enqueue(jt.add, x=2)
            sync_client.enqueue_many([(jt.add, {"x": 3})])
        assert loads() == 1  # found there each time: none loaded it again
        admin.execute_command("FUNCTION", "FLUSH")  # as a restart without persistence
        await fresh_client(many=True)
        assert loads() == 2
        assert admin.xlen("{probe}:q:default:2") == 10
        admin.close()
