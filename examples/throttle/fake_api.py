"""A stand-in for the outside API of the throttle example, enforcing the limits the provider states:
per customer 10 calls a second with bursts of 20 (a token bucket), and 2 report calls at once in all.
A call over a limit gets 429. GET /stats shows what it served and refused, per customer.

    python examples/throttle/fake_api.py [--port 8765]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import zlib
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

RATE, BURST, REPORTS_AT_ONCE, REPORT_SECONDS = 10.0, 20.0, 2, 0.2


class Limits:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: dict[str, float] = defaultdict(lambda: BURST)
        self.stamp: dict[str, float] = {}
        self.reports = 0
        self.served: dict[str, int] = defaultdict(int)
        self.refused: dict[str, int] = defaultdict(int)

    def take(self, customer: str) -> bool:
        with self.lock:
            now = time.monotonic()
            elapsed = now - self.stamp.get(customer, now)
            self.stamp[customer] = now
            self.tokens[customer] = min(BURST, self.tokens[customer] + elapsed * RATE)
            if self.tokens[customer] < 1:
                self.refused[customer] += 1
                return False
            self.tokens[customer] -= 1
            self.served[customer] += 1
            return True


LIMITS = Limits()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the name http.server calls
        url = urlparse(self.path)
        parts = url.path.strip("/").split("/")
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if parts == ["stats"]:
            self._send(200, {"served": LIMITS.served, "refused": LIMITS.refused})
            return
        if len(parts) != 3 or parts[0] != "customers":
            self._send(404, {"error": "no such endpoint"})
            return
        customer, endpoint = parts[1], parts[2]
        if not LIMITS.take(customer):
            self._send(429, {"error": "rate limit"})
            return
        if endpoint == "pages":
            self._send(200, {"pages": list(range(int(query.get("count", "1"))))})
        elif endpoint == "invoices":
            seed = zlib.crc32(f"{customer}/{query.get('page')}".encode())
            self._send(200, {"invoices": seed % 7, "total_cents": seed % 100_000})
        elif endpoint == "report":
            self._report()
        else:
            self._send(404, {"error": "no such endpoint"})

    def _report(self) -> None:
        with LIMITS.lock:
            busy = LIMITS.reports >= REPORTS_AT_ONCE
            if not busy:
                LIMITS.reports += 1
        if busy:
            self._send(429, {"error": "too many reports at once"})
            return
        try:
            time.sleep(REPORT_SECONDS)  # the slow endpoint
            self._send(200, {"ok": True})
        finally:
            with LIMITS.lock:
                LIMITS.reports -= 1

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    port = parser.parse_args().port
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
