"""Shared settings/helpers for the benchmark's library modules (adapted from ../shared/bench/peers/libs).

Every library module uses its own Redis db (PB_DB env var, set by bench/harness.py).
Additions over the original: the delayed-job lateness helpers (LATE_KEY, delays(), lateness_*).

Every library module uses its own Redis db (PB_DB env var, set by bench.py).
The no-op task body is identical everywhere: RPUSH the int to DONE_KEY and return it.
bench.py polls LLEN(DONE_KEY) to detect drain completion; latency/DAG producers
BLPOP DONE_KEY / DAG_KEY (blocking, no polling).
"""
import os
import time

DB = int(os.environ.get("PB_DB", "15"))
HOST = "127.0.0.1"
PORT = 6379
URL = os.environ.get("PB_URL") or f"redis://{HOST}:{PORT}/{DB}"
_KEYS = os.environ.get("PB_KEYS", "pb")  # the smoke test puts these lists inside its namespace
DONE_KEY = f"{_KEYS}:done"
DAG_KEY = f"{_KEYS}:dagdone"
LATE_KEY = f"{_KEYS}:late"


def barrier():
    """Several producers started together (scaling figure): wait for the common start time, which
    comes after every producer has imported its library and connected."""
    start_at = os.environ.get("PB_START_AT")
    if start_at:
        time.sleep(max(0.0, float(start_at) - time.time()))

_sync = None
_async = None


def sync_r():
    global _sync
    if _sync is None:
        import redis
        _sync = redis.Redis.from_url(URL)
    return _sync


def async_r():
    """One asyncio client per process/event loop (workers run one loop)."""
    global _async
    if _async is None:
        import redis.asyncio as aredis
        _async = aredis.Redis.from_url(URL)
    return _async


def fresh_sync():
    import redis
    return redis.Redis.from_url(URL)


def latency_loop(submit, n, warmup=20, timeout=10):
    """Sync latency loop: submit(i) then BLPOP the done list. Returns ms list."""
    r = fresh_sync()
    r.delete(DONE_KEY)
    out = []
    for i in range(n + warmup):
        t0 = time.perf_counter()
        submit(i)
        got = r.blpop(DONE_KEY, timeout=timeout)
        t1 = time.perf_counter()
        if got is None:
            raise RuntimeError(f"latency job {i} not completed within {timeout}s")
        if i >= warmup:
            out.append((t1 - t0) * 1000.0)
    return out


async def alatency_loop(submit, n, warmup=20, timeout=10):
    """Async latency loop: await submit(i) then BLPOP (separate connection)."""
    import redis.asyncio as aredis
    r = aredis.Redis.from_url(URL)
    await r.delete(DONE_KEY)
    out = []
    for i in range(n + warmup):
        t0 = time.perf_counter()
        await submit(i)
        got = await r.blpop(DONE_KEY, timeout=timeout)
        t1 = time.perf_counter()
        if got is None:
            raise RuntimeError(f"latency job {i} not completed within {timeout}s")
        if i >= warmup:
            out.append((t1 - t0) * 1000.0)
    await r.aclose()
    return out


def wait_dag_sync(t0, timeout=120):
    r = fresh_sync()
    got = r.blpop(DAG_KEY, timeout=timeout)
    if got is None:
        raise RuntimeError("DAG join not completed")
    return time.perf_counter() - t0


# ---- delayed-job lateness -------------------------------------------------------------------
# n jobs are submitted back to back, job i asking to run `delays(n)[i]` seconds later; the task body
# (`late(x)`) pushes "x <wall ms>" to LATE_KEY.  Lateness = wall ms at the task body - (wall ms just
# before the submit call + delay).  The same formula for every library.

def delays(n, lo=None, hi=None):
    lo = float(os.environ.get("PB_DELAY_LO", "0.5")) if lo is None else lo
    hi = float(os.environ.get("PB_DELAY_HI", "2.5")) if hi is None else hi
    if n <= 1:
        return [lo] * n
    step = (hi - lo) / (n - 1)
    # interleave so that consecutive submissions are not due in submission order
    # interleaved (consecutive submissions are not due in submission order) and rounded to 0.1 s:
    # a tqflow flow has a fixed `delay`, so the adapter deploys one flow per 0.1 s bucket
    return [round(lo + step * ((i * 7919) % n), 1) for i in range(n)]


def late_payload(x):
    return f"{x} {time.time() * 1000.0:.3f}"


def _collect(pop, due, timeout):
    out = []
    deadline = time.time() + timeout
    while len(out) < len(due):
        left = deadline - time.time()
        if left <= 0:
            raise RuntimeError(f"delayed jobs: {len(out)}/{len(due)} ran before the timeout")
        got = pop(max(1, int(left)))
        if got is None:
            continue
        x, ms = got[1].split()
        out.append(float(ms) - due[int(x)])
    return out


def lateness_sync(submit, n):
    """submit(i, delay_seconds) for each job; returns the lateness of each in ms."""
    r = fresh_sync()
    r.delete(LATE_KEY)
    due = {}
    for i, d in enumerate(delays(n)):
        due[i] = (time.time() + d) * 1000.0
        submit(i, d)
    hi = max(delays(n)) if n else 0
    res = _collect(lambda t: _dec(r.blpop(LATE_KEY, timeout=t)), due, hi + 30)
    return res


def _dec(got):
    if got is None:
        return None
    return got[0], got[1].decode() if isinstance(got[1], bytes) else got[1]


async def alateness(submit, n):
    """Async version: await submit(i, delay_seconds)."""
    import redis.asyncio as aredis
    r = aredis.Redis.from_url(URL)
    await r.delete(LATE_KEY)
    due = {}
    for i, d in enumerate(delays(n)):
        due[i] = (time.time() + d) * 1000.0
        await submit(i, d)
    out = []
    deadline = time.time() + max(delays(n)) + 30
    while len(out) < n:
        left = deadline - time.time()
        if left <= 0:
            raise RuntimeError(f"delayed jobs: {len(out)}/{n} ran before the timeout")
        got = _dec(await r.blpop(LATE_KEY, timeout=max(1, int(left))))
        if got is None:
            continue
        x, ms = got[1].split()
        out.append(float(ms) - due[int(x)])
    await r.aclose()
    return out
