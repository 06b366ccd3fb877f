"""Celery: Redis broker + Redis result backend (results persisted, needed for chords)."""
import time
import celery
from celery import Celery, group, chord, chain
from common import URL, DONE_KEY, DAG_KEY, LATE_KEY, sync_r, latency_loop, wait_dag_sync, late_payload, lateness_sync, barrier

VERSION = celery.__version__
app = Celery("pb", broker=URL, backend=URL)
app.conf.update(
    task_default_queue="pb",
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop(x):
    sync_r().rpush(DONE_KEY, x)
    return x


@app.task(name="late")
def late(x):
    sync_r().rpush(LATE_KEY, late_payload(x))


@app.task(name="join")
def join():
    sync_r().rpush(DAG_KEY, 1)
    return 1


def enqueue(n):
    barrier()
    t0 = time.perf_counter()
    for i in range(n):
        noop.delay(i)
    return time.perf_counter() - t0


def enqueue_bulk(n):
    t0 = time.perf_counter()
    group(noop.s(i) for i in range(n)).apply_async()
    return time.perf_counter() - t0


def latency(n):
    return latency_loop(lambda i: noop.delay(i), n)


def dag(k):
    t0 = time.perf_counter()
    chain(noop.si(0), chord([noop.si(i) for i in range(1, k + 1)], join.si())).apply_async()
    return wait_dag_sync(t0)


_base = ["celery", "-A", "pb_celery", "worker", "-Q", "pb", "-l", "WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat"]
def delayed(n):
    # countdown = ETA task: the worker holds it in memory until due
    return lateness_sync(lambda i, d: late.apply_async((i,), countdown=d), n)


def workers(procs):
    # -P solo: exactly `procs` processes (prefork adds a master doing the broker I/O; solo x2
    # drained faster than prefork -c 2 in the peer baseline)
    return {
        "cmds": [_base + ["-P", "solo", "-n", f"w{i}@%h"] for i in range(1, procs + 1)],
        "desc": f"{procs}x `celery worker -P solo` (--without-gossip/mingle/heartbeat)",
    }
