"""The benchmark orchestrator: tqflow and its peers on one Redis, in one run (see docs/benchmarks.md).

Runs under bench/.venvs/tqflow (bench/run.py creates the virtualenvs and bench/.node, then starts this).
Each library gets its own Redis db on 127.0.0.1:6379 and its operations run in fresh processes of its own
virtualenv (peers/driver.py), or of the machine's Node for BullMQ (peers/pb_bullmq.cjs). Every measurement
is one JSON line in bench/results/raw-<stamp>.jsonl, with the machine's load average and CPU steal before
and during it (`machine`: see Machine; a measurement started on a busy machine says `"busy": true`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import redis

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
RESULTS = HERE / "results"
VENVS = HERE / ".venvs"
# One Redis db per library (the peer baseline's numbering; tqflow takes 9). Each db is flushed
# before and after its own library's steps only.
DBS = {
    "celery": 1,
    "rq": 2,
    "dramatiq": 3,
    "arq": 4,
    "saq": 5,
    "taskiq": 6,
    "streaq": 7,
    "huey": 8,
    "tqflow": 9,
    "bullmq": 10,
}
VENV_OF = {"celery": "redis8", "taskiq": "redis8", "tqflow": "tqflow"}  # the rest: "peers"
# Peers run by Node, not Python: their adapter script in peers/, bullmq installed into bench/.node by run.py
NODE_LIBS = {"bullmq": "pb_bullmq.cjs"}
NODE_DIR = HERE / ".node"
PEER_LIBS = [lib for lib in DBS if lib != "tqflow"]
QUICK_PEERS = ["bullmq", "huey"]  # the two fastest drains among the peers
DEFAULT_SCALE = "tqflow,bullmq,huey,dramatiq"
DONE_KEY = "pb:done"
TIMEOUT = 300.0
STALL = 60.0  # seconds without a single completion: the drain has failed


def venv_bin(lib: str) -> Path:
    return VENVS / VENV_OF.get(lib, "peers") / "bin"


def env_for(lib: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PB_DB=str(DBS[lib]), PYTHONPATH=f"{PEERS}:{HERE}", PYTHONUNBUFFERED="1")
    env["PATH"] = f"{venv_bin(lib)}:{env.get('PATH', '')}"
    env["NODE_PATH"] = str(NODE_DIR / "node_modules")
    env.update(extra or {})
    return env


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise RuntimeError("node is not installed: the Node peers (bullmq) cannot run")
    return found


def driver_cmd(lib: str, op: str, n: int, start_at: float | None = None) -> list[str]:
    if lib in NODE_LIBS:
        cmd = [node(), str(PEERS / NODE_LIBS[lib]), op, str(n)]
    else:
        cmd = [str(venv_bin(lib) / "python"), str(PEERS / "driver.py"), lib, op, str(n)]
    return cmd + ([repr(start_at)] if start_at is not None else [])


def driver(lib: str, op: str, n: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = subprocess.run(
        driver_cmd(lib, op, n),
        cwd=PEERS,
        env=env_for(lib, env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{lib} {op} failed (exit {proc.returncode}): {proc.stderr[-1500:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def capabilities(lib: str) -> dict[str, Any]:
    code = (
        "import json, importlib; m = importlib.import_module({mod!r}); "
        "print(json.dumps({{'version': m.VERSION, 'bulk': bool(m.enqueue_bulk), 'dag': bool(m.dag), "
        "'delayed': bool(getattr(m, 'delayed', None)), 'setup': hasattr(m, 'setup'), "
        "'workers': {{p: m.workers(p) for p in (1, 2, 4)}}}}))"
    ).format(mod="tqflow_adapter" if lib == "tqflow" else f"pb_{lib}")
    argv = [node(), str(PEERS / NODE_LIBS[lib]), "caps"] if lib in NODE_LIBS else []
    proc = subprocess.run(
        argv or [str(venv_bin(lib) / "python"), "-c", code],
        cwd=PEERS,
        env=env_for(lib),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{lib} does not import: {proc.stderr[-1500:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


class Workers:
    """Worker processes, each in its own session; stopped by SIGTERM, then SIGKILL, to *their* group."""

    def __init__(self, lib: str, cmds: list[list[str]], tag: str) -> None:
        (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[IO[bytes]] = []
        for i, cmd in enumerate(cmds):
            log = open(RESULTS / "logs" / f"{tag}-w{i}.log", "wb")  # noqa: SIM115 - closed in stop()
            argv = [str(venv_bin(lib) / cmd[0]), *cmd[1:]]  # an absolute cmd[0] (node) stays as it is
            self.procs.append(
                subprocess.Popen(
                    argv,
                    cwd=PEERS,
                    env=env_for(lib),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            self.logs.append(log)

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)
        deadline = time.time() + 5
        for p in self.procs:
            with suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.time()))
        self._signal(signal.SIGKILL)  # whatever is left in each group (pool children and so on)
        for p in self.procs:
            with suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        for log in self.logs:
            log.close()

    def _signal(self, sig: int) -> None:
        for p in self.procs:
            with suppress(ProcessLookupError):
                os.killpg(p.pid, sig)


@contextmanager
def workers(lib: str, caps: dict[str, Any], procs: int, tag: str) -> Iterator[Workers]:
    w = Workers(lib, caps["workers"][str(procs)]["cmds"], tag)
    try:
        yield w
    finally:
        w.stop()


def wait_drain(r: redis.Redis, n: int, w: Workers, poll: float = 0.002) -> dict[str, float]:
    """Jobs done between the first completion seen and the last, per second (worker boot excluded)."""
    t_spawn = time.perf_counter()
    t_first = c_first = None
    last, t_progress = -1, t_spawn
    while True:
        count = int(r.llen(DONE_KEY))  # type: ignore[arg-type]
        now = time.perf_counter()
        if count > 0 and t_first is None:
            t_first, c_first = now, count
        if count >= n and t_first is not None and c_first is not None:
            secs = now - t_first
            rate = (n - c_first) / secs if secs > 0 else float("nan")
            return {"rate": rate, "secs": secs, "spawn_to_done": now - t_spawn}
        if count != last:
            last, t_progress = count, now
        if now - t_spawn > TIMEOUT or now - t_progress > STALL:
            raise RuntimeError(f"drain stalled or timed out: {count}/{n} done after {now - t_spawn:.0f} s")
        if not w.alive():
            raise RuntimeError(f"a worker died during the drain ({count}/{n} done)")
        time.sleep(poll)


def db_bytes(r: redis.Redis) -> int:
    """The memory of every key in this db (MEMORY USAGE, all nested values counted)."""
    total, batch = 0, []
    for key in r.scan_iter(count=1000):
        batch.append(key)
        if len(batch) == 500:
            total += _usage(r, batch)
            batch = []
    return total + (_usage(r, batch) if batch else 0)


def _usage(r: redis.Redis, keys: list[Any]) -> int:
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return sum(int(x or 0) for x in pipe.execute())


def read_cpu() -> tuple[int, int, int, int]:
    """(total, busy, steal, used) clock ticks of all CPUs from /proc/stat: busy is neither idle nor iowait,
    used is user + nice + system (what processes ran; irq, softirq and steal excluded)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    total = sum(fields)  # guest time is already counted in user
    return total, total - fields[3] - fields[4], fields[7], fields[0] + fields[1] + fields[2]


def read_load() -> tuple[float, float, float]:
    with open("/proc/loadavg") as f:
        one, five, fifteen = (float(x) for x in f.read().split()[:3])
    return one, five, fifteen


def own_ticks(root: int, extra: tuple[int, ...] = ()) -> int:
    """CPU clock ticks (user + system, with those of reaped children) of `root`, every live descendant
    of it, and the `extra` processes (the benchmark's Redis server): the benchmark's own CPU."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue  # gone meanwhile
        rest = raw[raw.rfind(b")") + 2 :].split()  # after "pid (comm) ": state ppid ... utime is the 12th
        pid = int(name)
        parent[pid] = int(rest[1])
        ticks[pid] = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
    ours = {root, *extra}
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in ours:
                ours.add(child)
                stack.append(child)
    return sum(ticks.get(pid, 0) for pid in ours)


Sample = tuple[float, float, tuple[int, int, int, int], int]  # (monotonic, load1, read_cpu(), own_ticks)


def usage(a: Sample, b: Sample) -> tuple[float, float, float]:
    """(machine busy %, steal %, others' %) between two samples: others' is the CPU that processes not of
    the benchmark (neither the harness's process tree nor its Redis) used, % of all the machine's CPU."""
    total = b[2][0] - a[2][0]
    if total <= 0:
        return 0.0, 0.0, 0.0
    busy = 100.0 * (b[2][1] - a[2][1]) / total
    steal = 100.0 * (b[2][2] - a[2][2]) / total
    others = 100.0 * max(0, (b[2][3] - a[2][3]) - (b[3] - a[3])) / total
    return busy, steal, others


class Machine:
    """The machine's load around each measurement, so that a figure taken on a busy box says so.

    A thread samples /proc/loadavg, /proc/stat and the CPU time of the benchmark's own processes (this
    process tree and the Redis server) every `period` s. Around one measurement (`begin()`/`end()`, or
    `watch()`) it records the load averages at its start, the machine's busy CPU, steal and *others'* CPU
    (used by processes that are not the benchmark's) over the `lookback` s before it and over the
    measurement itself, and the highest 1-minute load seen during it. `busy` says others used more than
    `busy_cpu` % of the machine before or during it, or steal was above `busy_steal` %. (The load average
    alone cannot tell: it counts the harness's own previous steps for a minute, so it would call every step
    of a quiet run busy; main() judges the load average once, before the run's first step.) Before each
    measurement it waits up to `settle` s for others' CPU to fall to `busy_cpu`.
    """

    def __init__(
        self,
        busy_steal: float,
        busy_cpu: float,
        settle: float,
        period: float = 0.5,
        lookback: float = 5.0,
        redis_pid: int | None = None,
    ) -> None:
        self.busy_steal, self.busy_cpu, self.settle = busy_steal, busy_cpu, settle
        self.period, self.lookback = period, lookback
        self.root = os.getpid()
        self.extra = (redis_pid,) if redis_pid else ()
        self.samples: deque[Sample] = deque(maxlen=int(lookback / period) * 4 + 8)
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self._sample()
        self.thread = threading.Thread(target=self._run, name="machine-sampler", daemon=True)
        self.thread.start()

    def _sample(self) -> Sample:
        sample = (time.monotonic(), read_load()[0], read_cpu(), own_ticks(self.root, self.extra))
        with self.lock:
            self.samples.append(sample)
        return sample

    def _run(self) -> None:
        while not self.stopped.wait(self.period):
            self._sample()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=2)

    def _back(self, now: Sample) -> Sample:
        """The newest sample at least `lookback` s older than `now` (the oldest one there is, early on)."""
        with self.lock:
            older = [s for s in self.samples if s[0] <= now[0] - self.lookback] or [self.samples[0]]
        return older[-1]

    def begin(self) -> dict[str, Any]:
        """Settle, then take the 'before' figures of a measurement that starts now."""
        waited = time.monotonic()
        start = self._sample()
        while usage(self._back(start), start)[2] > self.busy_cpu and time.monotonic() - waited < self.settle:
            time.sleep(self.period)
            start = self._sample()
        base = self._back(start)
        cpu_before, steal_before, others_before = usage(base, start)
        # at most what the machine used: a child's whole CPU lands in its parent's ticks when it is reaped, so
        # over a short lookback the benchmark's own share could read above the machine's busy (200 % in CI)
        own_before = min(100.0 * (start[3] - base[3]) / max(1, start[2][0] - base[2][0]), cpu_before)
        one, five, fifteen = read_load()
        return {
            "start": start,
            "load1_before": one,
            "load5_before": five,
            "load15_before": fifteen,
            "cpu_before_pct": round(cpu_before, 1),
            "others_before_pct": round(others_before, 1),
            "own_before_pct": round(own_before, 1),
            "steal_before_pct": round(steal_before, 2),
            "settled_s": round(time.monotonic() - waited, 1),
        }

    def end(self, began: dict[str, Any]) -> dict[str, Any]:
        """The figures of a measurement begun by begin() and ending now."""
        start = began["start"]
        end = self._sample()
        cpu, steal, others = usage(start, end)
        info = {k: v for k, v in began.items() if k != "start"}
        with self.lock:
            during = [s[1] for s in self.samples if s[0] >= start[0]]
        info.update(
            load1_max=max(during),
            cpu_pct=round(cpu, 1),
            others_pct=round(others, 1),
            steal_pct=round(steal, 2),
            secs=round(end[0] - start[0], 3),
        )
        info["busy"] = (
            max(info["others_before_pct"], others) > self.busy_cpu
            or max(info["steal_before_pct"], steal) > self.busy_steal
        )
        return info

    @contextmanager
    def watch(self) -> Iterator[dict[str, Any]]:
        """begin() and end() around a block; the dict it yields is filled when the block ends."""
        began = self.begin()
        info: dict[str, Any] = {}
        yield info
        info.update(self.end(began))


def machine_note(m: dict[str, Any]) -> str:
    flag = " BUSY" if m.get("busy") else ""
    return (
        f"load {m['load1_before']:.2f} before (max {m['load1_max']:.2f} during), "
        f"others' cpu {m['others_before_pct']:.0f}% before / {m['others_pct']:.0f}% during, "
        f"steal {max(m['steal_before_pct'], m['steal_pct']):.1f}%{flag}"
    )


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


class Bench:
    def __init__(self, args: argparse.Namespace, out: IO[str], machine: Machine) -> None:
        self.args = args
        self.out = out
        self.machine = machine
        self.caps: dict[str, dict[str, Any]] = {}
        self.env = {"PB_DELAY_LO": str(args.delay_lo), "PB_DELAY_HI": str(args.delay_hi)}

    def emit(
        self, lib: str, kind: str, run: int, machine: dict[str, Any] | None = None, **fields: Any
    ) -> None:
        record = {"lib": lib, "kind": kind, "run": run, "ts": time.time(), **fields}
        if machine is not None:
            record["machine"] = machine
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items() if k != "ms"
        )
        note = f"  [{machine_note(machine)}]" if machine else ""
        print(f"  [{lib} run {run}] {kind}: {shown}{note}", flush=True)

    def step(self, lib: str, run: int, stage: str, fn: Callable[[], None]) -> bool:
        try:
            fn()
            return True
        except Exception as err:
            self.emit(lib, "error", run, stage=stage, err=str(err)[-800:])
            traceback.print_exc()
            return False

    def redis(self, lib: str) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=6379, db=DBS[lib])

    def fresh(self, lib: str) -> redis.Redis:
        r = self.redis(lib)
        r.flushdb()  # this library's own db only
        if self.caps[lib]["setup"]:
            driver(lib, "setup", 0, self.env)
        return r

    def floor(self, run: int) -> None:
        """bench/floors.py's sync round trip (one LPUSH a call, redis-py, db 9), in this run, just before
        tqflow's one-by-one enqueue: the floor that target is measured against."""
        code = f"import json, floors; print(json.dumps({{'rate': floors.sync_round_trips({self.args.n})}}))"
        with self.machine.watch() as m:
            proc = subprocess.run(
                [str(venv_bin("tqflow") / "python"), "-c", code],
                cwd=HERE,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=True,
            )
        rate = float(json.loads(proc.stdout.strip().splitlines()[-1])["rate"])
        self.emit("tqflow", "floor", run, m, rate=rate, n=self.args.n, what="sync round trip (LPUSH)")

    def one_run(self, lib: str, run: int) -> None:
        a, caps = self.args, self.caps[lib]
        r = self.fresh(lib)
        if lib == "tqflow":
            self.step(lib, run, "floor", lambda: self.floor(run))
        before = db_bytes(r)

        def enqueue() -> None:
            with self.machine.watch() as m:
                res = driver(lib, "enqueue", a.n, self.env)
            self.emit(lib, "enqueue", run, m, rate=a.n / res["secs"], secs=res["secs"])
            per_job = (db_bytes(r) - before) / a.n
            self.emit(lib, "memory", run, bytes_per_job=per_job)

        if not self.step(lib, run, "enqueue", enqueue):
            r.flushdb()
            return
        began = self.machine.begin()  # the drain's figures include the workers' boot
        with workers(lib, caps, 2, f"{lib}-run{run}-p2") as w:

            def drain() -> None:
                res = wait_drain(r, a.n, w)
                self.emit(lib, "drain", run, self.machine.end(began), procs=2, n=a.n, **res)

            ok = self.step(lib, run, "drain", drain)
            if ok:
                self.step(lib, run, "latency", lambda: self.latency(lib, run, r))
                if caps["dag"]:
                    self.step(lib, run, "dag", lambda: self.dag(lib, run, r))
                if caps["delayed"]:
                    self.step(lib, run, "delayed", lambda: self.delayed(lib, run))
        if caps["bulk"]:
            r = self.fresh(lib)

            def bulk() -> None:
                with self.machine.watch() as m:
                    res = driver(lib, "bulk", a.n, self.env)
                self.emit(lib, "bulk", run, m, rate=a.n / res["secs"], secs=res["secs"])

            self.step(lib, run, "bulk", bulk)
        r.flushdb()

    def latency(self, lib: str, run: int, r: redis.Redis) -> None:
        time.sleep(1.0)
        driver(lib, "latency", 0, self.env)  # 20 warm-up jobs through the idle workers
        time.sleep(0.5)
        with self.machine.watch() as m:
            ms = driver(lib, "latency", self.args.lat, self.env)["ms"]
        self.emit(
            lib, "latency", run, m, p50=pct(ms, 50), p99=pct(ms, 99), mean=sum(ms) / len(ms), count=len(ms)
        )

    def dag(self, lib: str, run: int, r: redis.Redis) -> None:
        r.delete("pb:dagdone")
        with self.machine.watch() as m:
            secs = driver(lib, "dag", self.args.dag, self.env)["secs"]
        self.emit(lib, "dag", run, m, secs=secs, children=self.args.dag)

    def delayed(self, lib: str, run: int) -> None:
        with self.machine.watch() as m:
            ms = driver(lib, "delayed", self.args.delayed, self.env)["ms"]
        self.emit(lib, "delayed", run, m, p50=pct(ms, 50), p99=pct(ms, 99), max=max(ms), count=len(ms))

    def scale_drain(self, lib: str, run: int, procs: int) -> None:
        n = self.args.scale_n
        r = self.fresh(lib)
        driver(lib, "bulk" if self.caps[lib]["bulk"] else "enqueue", n, self.env)
        began = self.machine.begin()
        with workers(lib, self.caps[lib], procs, f"{lib}-run{run}-scale{procs}") as w:
            res = wait_drain(r, n, w)
            m = self.machine.end(began)
        self.emit(lib, "scale_drain", run, m, procs=procs, n=n, **res)
        r.flushdb()

    def scale_enqueue(self, lib: str, run: int, producers: int) -> None:
        n = self.args.scale_n // producers * producers
        self.fresh(lib)
        with self.machine.watch() as m:
            start_at = (
                time.time() + 2.0 + 1.5 * producers
            )  # every producer has imported and connected by then
            procs = [
                subprocess.Popen(
                    driver_cmd(lib, "enqueue", n // producers, start_at),
                    cwd=PEERS,
                    env=env_for(lib, self.env),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(producers)
            ]
            results = []
            for p in procs:
                stdout, stderr = p.communicate(timeout=TIMEOUT)
                if p.returncode != 0:
                    raise RuntimeError(f"producer failed: {stderr[-800:]}")
                results.append(json.loads(stdout.strip().splitlines()[-1]))
        begin = min(res["end"] - res["secs"] for res in results)
        end = max(res["end"] for res in results)
        late = max(res.get("started_late", 0.0) for res in results)
        self.emit(
            lib, "scale_enqueue", run, m, producers=producers, n=n, rate=n / (end - begin), started_late=late
        )
        self.redis(lib).flushdb()


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="tqflow against its peers, on one Redis, in one run")
    ap.add_argument(
        "--quick", action="store_true", help="tqflow vs the two fastest peers, small sizes, 1 run"
    )
    ap.add_argument("--libs", default=None, help="comma-separated (default: tqflow and every peer)")
    ap.add_argument("--runs", type=int, default=None, help="repetitions, interleaved (default 3; quick 1)")
    ap.add_argument(
        "--n", type=int, default=None, help="jobs to enqueue and drain (default 20000; quick 5000)"
    )
    ap.add_argument("--lat", type=int, default=None, help="sequential latency jobs (default 500; quick 100)")
    ap.add_argument("--dag", type=int, default=1000, help="children of the fan-out/fan-in")
    ap.add_argument("--delayed", type=int, default=None, help="delayed jobs (default 200; quick 50)")
    ap.add_argument(
        "--scale-libs",
        default=None,
        help=f"libraries for the scaling figures (default: those of {DEFAULT_SCALE} in --libs; quick: none)",
    )
    ap.add_argument("--scale-n", type=int, default=10000, help="jobs per scaling measurement")
    ap.add_argument(
        "--busy-load",
        type=float,
        default=0.5,
        help="a run whose 1-minute load average is above this when it begins is busy (default 0.5)",
    )
    ap.add_argument(
        "--busy-cpu",
        type=float,
        default=10.0,
        help="a measurement is busy when other processes used more than this %% of the machine's CPU "
        "before or during it (default 10)",
    )
    ap.add_argument(
        "--busy-steal",
        type=float,
        default=5.0,
        help="... or when CPU steal was above this %% (default 5)",
    )
    ap.add_argument(
        "--settle",
        type=float,
        default=None,
        help="seconds to wait at most: for the load average to fall to --busy-load before the run "
        "(6x this), and for others' CPU to fall to --busy-cpu before each measurement (default 10; quick 0)",
    )
    ap.add_argument("--out", default=None, help="raw JSONL path (default bench/results/raw-<stamp>.jsonl)")
    args = ap.parse_args(argv)
    quick = args.quick
    args.libs = [
        x for x in (args.libs or ",".join(["tqflow", *(QUICK_PEERS if quick else PEER_LIBS)])).split(",") if x
    ]
    args.runs = args.runs or (1 if quick else 3)
    args.n = args.n or (5000 if quick else 20000)
    args.lat = args.lat or (100 if quick else 500)
    args.delayed = args.delayed or (50 if quick else 200)
    args.delay_lo, args.delay_hi = (0.3, 1.3) if quick else (0.5, 2.5)
    default_scale = "" if quick else ",".join(x for x in DEFAULT_SCALE.split(",") if x in args.libs)
    args.settle = args.settle if args.settle is not None else (0.0 if quick else 10.0)
    args.scale_libs = [
        x for x in (args.scale_libs if args.scale_libs is not None else default_scale).split(",") if x
    ]
    unknown = sorted(set(args.libs + args.scale_libs) - set(DBS))
    if unknown:
        ap.error(f"unknown libraries: {', '.join(unknown)} (known: {', '.join(DBS)})")
    return args


def main(argv: list[str]) -> Path:
    args = parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_path = Path(args.out) if args.out else RESULTS / f"raw-{stamp}{'-quick' if args.quick else ''}.jsonl"
    redis.Redis(host="127.0.0.1", port=6379).ping()
    t0 = time.time()
    redis_pid = int(redis.Redis(host="127.0.0.1", port=6379).info("server").get("process_id", 0))
    machine = Machine(args.busy_steal, args.busy_cpu, args.settle, redis_pid=redis_pid)
    waited = time.monotonic()  # the 1-minute load average, before the run has done anything
    while read_load()[0] > args.busy_load and time.monotonic() - waited < 6 * args.settle:
        time.sleep(1.0)
    load_at_start = read_load()
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in load_at_start)}", flush=True)
    with open(out_path, "a") as out:
        bench = Bench(args, out, machine)
        settings = {k: v for k, v in vars(args).items() if k != "out"}
        settings.update(
            cpus=os.cpu_count(),
            loadavg_at_start=load_at_start,
            busy_at_start=load_at_start[0] > args.busy_load,
            waited_at_start=round(time.monotonic() - waited, 1),
        )
        out.write(json.dumps({"kind": "settings", "ts": t0, **settings}) + "\n")
        for lib in dict.fromkeys(args.libs + args.scale_libs):
            try:
                bench.caps[lib] = capabilities(lib)
                meta = {
                    "version": bench.caps[lib]["version"],
                    "workers": bench.caps[lib]["workers"]["2"]["desc"],
                }
                out.write(json.dumps({"lib": lib, "kind": "meta", **meta}) + "\n")
            except Exception as err:
                print(f"{lib}: {err}", file=sys.stderr)
        for run in range(1, args.runs + 1):  # interleaved: run 1 of every library, then run 2, ...
            for lib in args.libs:
                if lib in bench.caps:
                    print(f"== run {run}: {lib}", flush=True)
                    bench.one_run(lib, run)
            for lib in args.scale_libs:
                if lib not in bench.caps:
                    continue
                print(f"== run {run}: {lib} scaling", flush=True)
                for procs in (1, 2, 4):
                    bench.step(
                        lib, run, "scale_drain", lambda lib=lib, p=procs, k=run: bench.scale_drain(lib, k, p)
                    )
                for producers in (1, 2, 4):
                    bench.step(
                        lib,
                        run,
                        "scale_enqueue",
                        lambda lib=lib, p=producers, k=run: bench.scale_enqueue(lib, k, p),
                    )
        out.write(json.dumps({"kind": "end", "ts": time.time(), "secs": time.time() - t0}) + "\n")
    machine.stop()
    print(f"raw results: {out_path} ({time.time() - t0:.0f} s)")
    return out_path


if __name__ == "__main__":
    main(sys.argv[1:])
