"""Where a job's simulated cache misses and mispredicts are, by function and by part of redis-server.

Usage: python bench/cache_profile.py DUMP --jobs N [--top 25] [--sort cycles|Ir|I1mr|D1mr|DLmr|Bim|…]

DUMP is one of the dumps `bench/cost.py --cachegrind --callgrind-out DIR` keeps (`DIR/cg.out.PID.K`: K = 1
and 2 are the warm-up's enqueue and drain, then each scenario's enqueue and drain in the order run, so with
`--only streams,bulk` 3 and 4 are the bare queue's, 5 and 6 bulk's); N is the scenario's --n. It prints each
function's own (exclusive) events per job, the top ones by `--sort`, then the same summed by part of the
server (the Lua interpreter, its string table, its garbage collector, the two allocators, the stream
listpacks, the keyspace, copies), with the rough cycles of `bench/cost.py`'s `CYCLES_MODEL`.
(`callgrind_annotate --threshold=100 DUMP` shows the same functions, with the stack's frames first: a dump
taken while the server runs charges them the whole; it has no groups.) Names need a redis-server with its
symbols: Debian's is stripped, so build the same version (`make` in a checkout of its tag) and run cost.py
with TQFLOW_REDIS_SERVER=that/src/redis-server.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

from cost import CYCLES_MODEL

SHOWN = ("Ir", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw", "Bcm", "Bim")
LUA_VM = (
    r"^(lua[A-Z_]|luaV_|luaH_|luaD_|luaF_|luaO_|luaT_|luaM_|luaK_|luaG_|luaL_|luaB_|luaZ_|index2adr|call'?\d*$"
    r"|setarrayvector|setnodevector|resize$|rehash|numuse|computesizes|countint|mainposition|getgeneric"
    r"|adjust_varargs|str_|match|singlematch|classEnd|push_onecapture|push_captures|tonumber|tconcat|unpack"
    r"|auxupvalue|ipairs|f_call|growCI|newkey$|luaRedis|redisProtocolToLuaType|scriptCall|fcall|luaEngine"
    r"|ldb|luaMaskCountHook|luaCallFunction|luaPush|luaRaise|luaError|luaSet|luaCreate|luaGet|luaExtract)"
)
GROUPS = (  # the first that matches a function's name
    (
        "Lua GC",
        r"^(sweep|propagatemark|singlestep|luaC_|markroot|traverse|reallymarkobject|atomic|GCTM|freeobj"
        r"|luaF_free|luaH_free|remarkupvals|cleartable|iscleared|checkSizes)",
    ),
    ("Lua string table (interning)", r"^luaS_"),
    ("Lua interpreter and its C API", LUA_VM),
    (
        "glibc malloc (Lua's heap)",
        r"^(_int_malloc|_int_free|_int_realloc|malloc_consolidate|unlink_chunk"
        r"|malloc$|free$|realloc$|calloc$|tcache|sysmalloc)",
    ),
    (
        "jemalloc (Redis's heap)",
        r"^(je_|extent|arena_|tcache_|ctl_|sz_|z(try)?(m|c|re)alloc|zfree|ehooks|emap"
        r"|rtree|pa_|pac_|bin_|large_|malloc_mutex|stats_|ticker|tsd_|te_)",
    ),
    ("memcpy, memset, memmove", r"^(__)?mem(cpy|set|move)"),
    ("stream listpacks", r"^(lp|stream)"),
    (
        "keyspace, expires, objects",
        r"^(dict|_dict|siphash|dbAdd|dbFind|lookupKey|setExpire|getExpire|keyIsExpired"
        r"|expireIfNeeded|activeExpire|dbGeneric|dbDelete|setKey|signalModifiedKey|notifyKeyspaceEvent"
        r"|touchWatchedKey|expireGenericCommand|create\w*StringObject|createObject|decrRefCount|incrRefCount)",
    ),
)
REST = "the rest (commands, replies, event loop)"


def exclusive(path: Path) -> tuple[list[str], dict[str, list[int]]]:
    """Each function's own events in a callgrind dump (a call's inclusive cost, the line after `calls=`,
    left out), names uncompressed."""
    events: list[str] = []
    names: dict[str, str] = {}
    own: dict[str, list[int]] = defaultdict(lambda: [0] * 16)
    fn, after_call = "?", False
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith(("fn=", "cfn=")):
            m = re.match(r"c?fn=\((\d+)\)\s*(.*)", line)
            name = (
                (names.setdefault(m.group(1), m.group(2)) if m.group(2) else names[m.group(1)]) if m else line
            )
            if line.startswith("fn="):
                fn = name
        elif line.startswith("calls="):
            after_call = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            if after_call:
                after_call = False
                continue
            row = own[fn]
            for i, value in enumerate(line.split()[1:]):
                row[i] += int(value)
    return events, dict(own)


def cycles(ev: dict[str, float]) -> float:
    return ev.get("Ir", 0.0) + sum(w * ev.get(k, 0.0) for k, w in CYCLES_MODEL.items())


def table(title: str, rows: list[tuple[str, dict[str, float]]]) -> None:
    print(f"{title:<44} {'~cycles':>8}" + "".join(f" {e:>7}" for e in SHOWN))
    for name, ev in rows:
        print(f"{name[:44]:<44} {cycles(ev):>8,.0f}" + "".join(f" {ev.get(e, 0.0):>7,.0f}" for e in SHOWN))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dump", type=Path)
    parser.add_argument("--jobs", type=int, required=True, help="the scenario's jobs (cost.py --n)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="cycles", help="cycles or an event name (Ir, D1mr, DLmr, Bim, …)")
    args = parser.parse_args()
    events, own = exclusive(args.dump)
    per_job = {fn: {e: v / args.jobs for e, v in zip(events, row, strict=False)} for fn, row in own.items()}

    def key(item: tuple[str, dict[str, float]]) -> float:
        return -(cycles(item[1]) if args.sort == "cycles" else item[1].get(args.sort, 0.0))

    total: dict[str, float] = defaultdict(float)
    groups: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    compiled = [(name, re.compile(pattern)) for name, pattern in GROUPS]
    for fn, ev in per_job.items():
        group = next((name for name, c in compiled if c.search(fn)), REST)
        for e, v in ev.items():
            groups[group][e] += v
            total[e] += v
    print(f"{args.dump}: events per job ({args.jobs} jobs), own cost of each function")
    table("function", [("total", total), *sorted(per_job.items(), key=key)[: args.top]])
    print()
    table("part of redis-server", sorted(groups.items(), key=key))


if __name__ == "__main__":
    main()
