"""Start a small cluster: three workers on three node names, one Redis, the `pulse` flow deployed.

    python start_cluster.py            # uses $TQFLOW_REDIS_URL, else starts a private Redis
    tqc workers                        # in another shell (same TQFLOW_REDIS_URL): who runs what, who leads
    kill -9 <pid of a worker>          # its jobs run again elsewhere; if it led, another worker leads

Every few seconds this prints the workers and the last runs. Ctrl-C stops the workers with SIGTERM
(each finishes or hands back its jobs) and then the Redis it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tqflow.runtime.embedded import EmbeddedRedis

HERE = Path(__file__).parent
NODES = ("node-a", "node-b", "node-c")


def main() -> None:
    server = None
    url = os.environ.get("TQFLOW_REDIS_URL")
    if not url:
        server = EmbeddedRedis(HERE / ".tqflow" / "redis")
        url = server.start()
        print(f"started a private Redis: export TQFLOW_REDIS_URL={url}")
    level = os.environ.get("TQFLOW_LOG_LEVEL", "warning")
    env = {**os.environ, "TQFLOW_REDIS_URL": url, "TQFLOW_LOG_LEVEL": level}
    flow = str(HERE / "cluster.tqflow")
    subprocess.run([sys.executable, "-m", "tqflow.cli.tqc", "deploy", flow, "--yes"], env=env, check=True)
    workers: list[subprocess.Popen[bytes]] = [
        subprocess.Popen([sys.executable, "-m", "tqflow.cli.tqrun", "worker", flow, "--node", node], env=env)
        for node in NODES
    ]
    print("workers:", ", ".join(f"{node} pid {w.pid}" for node, w in zip(NODES, workers, strict=True)))
    try:
        while True:
            time.sleep(6)
            subprocess.run([sys.executable, "-m", "tqflow.cli.tqc", "workers"], env=env, check=False)
    except KeyboardInterrupt:
        print("\nstopping the workers (SIGTERM: finish or hand back, then exit)")
    finally:
        stop(workers, server)


def stop(workers: list[subprocess.Popen[bytes]], server: EmbeddedRedis | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave processes behind
    try:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
    finally:
        if server is not None:
            server.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops it as cleanly as Ctrl-C
    signal.signal(signal.SIGINT, _interrupt)
    main()
