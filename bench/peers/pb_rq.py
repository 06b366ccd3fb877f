"""RQ: default result_ttl (500 s) -> results persisted."""
import time
from datetime import timedelta
import rq
from redis import Redis
from rq import Queue
from common import URL, DONE_KEY, DAG_KEY, LATE_KEY, sync_r, latency_loop, wait_dag_sync, late_payload, lateness_sync, barrier

VERSION = rq.__version__ if hasattr(rq, "__version__") else rq.VERSION


def noop(x):
    sync_r().rpush(DONE_KEY, x)
    return x


def late(x):
    sync_r().rpush(LATE_KEY, late_payload(x))


def join():
    sync_r().rpush(DAG_KEY, 1)
    return 1


def _q():
    return Queue("pb", connection=Redis.from_url(URL))


def enqueue(n):
    q = _q()
    barrier()
    t0 = time.perf_counter()
    for i in range(n):
        q.enqueue(noop, i)
    return time.perf_counter() - t0


def enqueue_bulk(n):
    q = _q()
    t0 = time.perf_counter()
    q.enqueue_many([Queue.prepare_data(noop, (i,)) for i in range(n)])
    return time.perf_counter() - t0


def latency(n):
    q = _q()
    return latency_loop(lambda i: q.enqueue(noop, i), n)


def dag(k):
    q = _q()
    t0 = time.perf_counter()
    root = q.enqueue(noop, 0)
    children = [q.enqueue(noop, i, depends_on=root) for i in range(1, k + 1)]
    q.enqueue(join, depends_on=children)
    return wait_dag_sync(t0)


def delayed(n):
    q = _q()
    return lateness_sync(lambda i, d: q.enqueue_in(timedelta(seconds=d), late, i), n)


def workers(procs):
    # SimpleWorker: exactly `procs` processes (the default Worker forks a work-horse per job and
    # drains ~4x slower); --with-scheduler so delayed jobs run (it polls every second by default)
    return {
        "cmds": [["rq", "worker", "-u", URL, "-q", "-w", "rq.worker.SimpleWorker", "--with-scheduler", "pb"]] * procs,
        "desc": f"{procs}x `rq worker -w rq.worker.SimpleWorker --with-scheduler`",
    }
