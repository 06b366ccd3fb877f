"""Producer-side driver: python driver.py <lib> <op> <n> [start_at]  -> prints one JSON line.

ops: setup, enqueue, bulk, latency, dag, delayed, version.  With start_at (a wall-clock time), the
enqueue loop starts then (common.barrier(): several producers together for the scaling figure), and
the driver reports the wall time at which the op ended.  lib "tqflow" loads ../tqflow_adapter.py.
"""
import importlib
import json
import os
import sys
import time

lib, op, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if len(sys.argv) > 4:
    os.environ["PB_START_AT"] = sys.argv[4]
m = importlib.import_module("tqflow_adapter" if lib == "tqflow" else "pb_" + lib)
if op == "version":
    print(json.dumps({"version": m.VERSION}))
elif op == "setup":  # before the memory baseline (tqflow: deploy the flows)
    m.setup()
    print(json.dumps({}))
elif op == "enqueue":
    secs = m.enqueue(n)
    end = time.time()
    late = end - secs - float(os.environ.get("PB_START_AT", end - secs))
    print(json.dumps({"secs": secs, "end": end, "started_late": late}))
elif op == "bulk":
    print(json.dumps({"secs": m.enqueue_bulk(n), "end": time.time()}))
elif op == "latency":
    print(json.dumps({"ms": m.latency(n)}))
elif op == "dag":
    print(json.dumps({"secs": m.dag(n)}))
elif op == "delayed":
    print(json.dumps({"ms": m.delayed(n)}))
else:
    raise SystemExit("bad op")
