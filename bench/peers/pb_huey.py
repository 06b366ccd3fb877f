"""huey: RedisHuey (blocking BRPOP storage), results=True (default)."""
import time
import huey as _huey
from huey import RedisHuey, group
from common import HOST, PORT, DB, DONE_KEY, DAG_KEY, LATE_KEY, sync_r, latency_loop, wait_dag_sync, late_payload, lateness_sync, barrier

VERSION = _huey.__version__
huey = RedisHuey("pb", host=HOST, port=PORT, db=DB)


@huey.task()
def noop(x):
    sync_r().rpush(DONE_KEY, x)
    return x


@huey.task()
def late(x):
    sync_r().rpush(LATE_KEY, late_payload(x))


@huey.task()
def join(*results):
    sync_r().rpush(DAG_KEY, 1)
    return 1


@huey.task()
def dag_root(k):
    # root job fans out: group(...).then(join) == huey chord
    huey.enqueue(group([noop.s(i) for i in range(1, k + 1)]).then(join))


def enqueue(n):
    barrier()
    t0 = time.perf_counter()
    for i in range(n):
        noop(i)
    return time.perf_counter() - t0


def enqueue_bulk(n):
    t0 = time.perf_counter()
    noop.map(range(n))
    return time.perf_counter() - t0


def latency(n):
    return latency_loop(lambda i: noop(i), n)


def dag(k):
    t0 = time.perf_counter()
    dag_root(k)
    return wait_dag_sync(t0)


def delayed(n):
    # huey's consumer checks its schedule once a second by default (-s 1)
    return lateness_sync(lambda i, d: late.schedule(args=(i,), delay=d), n)


def workers(procs):
    return {
        "cmds": [["huey_consumer", "pb_huey.huey", "-k", "process", "-w", str(procs), "-n", "-q"]],
        "desc": f"`huey_consumer -k process -w {procs} -n` (consumer parent + scheduler + {procs} worker processes)",
    }
