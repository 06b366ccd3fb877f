"""Payload codecs and compressions: bytes stored and CPU a round trip, on representative payloads.

Usage: .venv/bin/python bench/payload_codecs.py [--runs 3] [--seconds 0.3]

For each payload and each codec/compression tqflow offers, prints the bytes Redis stores (header and body,
as `runtime/store/payloads.py` writes them) and the CPU time (process time) of one `encode` plus one
`decode`, the median of `--runs` runs (each as many round trips as fit `--seconds`), with the load
average. `msgpack, base64` is the body as tqflow stored it before bodies were bytes (the size only).
No Redis is needed: this measures the encoding alone.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import msgpack

from tqflow.runtime.store import payloads
from tqflow.runtime.store.payloads import PayloadSettings


def records(n: int, rng: random.Random) -> dict[str, Any]:
    """Rows such as an API or a database hands a task: ids, names, amounts, dates, flags, tags."""
    cities = ["Lisbon", "Oslo", "Quito", "Nairobi", "Osaka", "Lima", "Porto", "Turin"]
    return {
        "batch": "2026-12-02T00:00:00Z",
        "rows": [
            {
                "id": 10_000 + i,
                "name": f"customer-{rng.randrange(10**6):06d}",
                "city": rng.choice(cities),
                "amount": round(rng.uniform(1, 5000), 2),
                "active": rng.random() < 0.8,
                "tags": rng.sample(["new", "vip", "eu", "late", "promo"], 2),
            }
            for i in range(n)
        ],
    }


def log_text(size: int, rng: random.Random) -> dict[str, Any]:
    levels = ["INFO", "WARN", "DEBUG"]
    lines = []
    while sum(map(len, lines)) < size:
        lines.append(
            f"2026-12-02 00:{rng.randrange(60):02d}:{rng.randrange(60):02d} {rng.choice(levels)} "
            f"request id={rng.randrange(10**9)} path=/api/v1/orders/{rng.randrange(10**5)} "
            f"took={rng.random():.3f}s"
        )
    return {"lines": lines}


def payload_set() -> dict[str, Any]:
    rng = random.Random(18)
    return {
        "small args (~70 B)": {
            "user_id": 12345,
            "email": "ada@example.com",
            "notify": True,
            "retries": [1, 2],
        },
        "11 records (~1.2 KB JSON)": records(11, rng),
        "800 records (~80 KB JSON)": records(800, rng),
        "log lines (~20 KB)": log_text(20_000, rng),
        "1,000 random floats": {"samples": [rng.random() for _ in range(1000)]},
        "16 KB of bytes (an image)": {
            "image": bytes(rng.randrange(256) for _ in range(12_000)) + b"\0" * 4096
        },
    }


CHOICES = [
    ("json", "none"),
    ("json", "zlib"),
    ("json", "zstd"),
    ("msgpack", "none"),
    ("msgpack", "zlib"),
    ("msgpack", "zstd"),
]


def stored_bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def cpu_per_round_trip(work: Callable[[], object], seconds: float) -> float:
    n, start = 0, time.process_time()
    while True:
        for _ in range(20):
            work()
        n += 20
        spent = time.process_time() - start
        if spent >= seconds:
            return spent / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; median of {args.runs} runs")
    print(f"{'payload':<28} {'codec, compression':<20} {'bytes':>8} {'µs enc+dec':>11}")
    for name, value in payload_set().items():
        for codec_name, compression in CHOICES:
            if codec_name == "json" and "bytes" in name:
                continue  # JSON cannot carry bytes
            settings = PayloadSettings(codec=codec_name, compression=compression)
            text = payloads.encode(value, settings)
            assert payloads.value(text, settings) == value

            def round_trip(s: PayloadSettings = settings, v: Any = value) -> object:
                return payloads.value(payloads.encode(v, s), s)

            times = [cpu_per_round_trip(round_trip, args.seconds) for _ in range(args.runs)]
            print(
                f"{name:<28} {codec_name + ', ' + compression:<20} {stored_bytes(text):>8} "
                f"{statistics.median(times):>11.1f}"
            )
        old = 3 + len(base64.b64encode(msgpack.packb(value, use_bin_type=True)))
        print(f"{name:<28} {'msgpack, base64':<20} {old:>8} {'(before)':>11}")


if __name__ == "__main__":
    main()
