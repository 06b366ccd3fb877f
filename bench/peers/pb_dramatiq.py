"""Dramatiq: RedisBroker, Results middleware (store_results=True), GroupCallbacks for the DAG."""
import time
import dramatiq
from dramatiq import group
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend
from dramatiq.middleware import GroupCallbacks
from dramatiq.rate_limits.backends import RedisBackend as RLBackend
from common import URL, DONE_KEY, DAG_KEY, LATE_KEY, sync_r, latency_loop, wait_dag_sync, late_payload, lateness_sync, barrier

VERSION = dramatiq.__version__
broker = RedisBroker(url=URL)
broker.add_middleware(Results(backend=RedisBackend(url=URL), result_ttl=3600 * 1000))
broker.add_middleware(GroupCallbacks(RLBackend(url=URL)))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="pb", max_retries=0, store_results=True)
def noop(x):
    sync_r().rpush(DONE_KEY, x)
    return x


@dramatiq.actor(queue_name="pb", max_retries=0)
def late(x):
    sync_r().rpush(LATE_KEY, late_payload(x))


@dramatiq.actor(queue_name="pb", max_retries=0)
def join():
    sync_r().rpush(DAG_KEY, 1)


@dramatiq.actor(queue_name="pb", max_retries=0)
def dag_root(k):
    # dramatiq has no root->group pipeline; the root job fans out itself.
    g = group([noop.message(i) for i in range(1, k + 1)])
    g.add_completion_callback(join.message())
    g.run()


def enqueue(n):
    barrier()
    t0 = time.perf_counter()
    for i in range(n):
        noop.send(i)
    return time.perf_counter() - t0


def enqueue_bulk(n):
    t0 = time.perf_counter()
    group([noop.message(i) for i in range(n)]).run()
    return time.perf_counter() - t0


def latency(n):
    return latency_loop(lambda i: noop.send(i), n)


def dag(k):
    t0 = time.perf_counter()
    dag_root.send(k)
    return wait_dag_sync(t0)


def delayed(n):
    return lateness_sync(lambda i, d: late.send_with_options(args=(i,), delay=int(d * 1000)), n)


def workers(procs):
    return {
        "cmds": [["dramatiq", "pb_dramatiq", "--processes", str(procs), "--threads", "8", "--queues", "pb", "pb.DQ"]],
        "desc": f"`dramatiq --processes {procs} --threads 8` (supervisor + {procs} worker processes)",
    }
