"""Tasks of the throttle example: each one is a call to the outside API (fake_api.py stands for it).

An answer of 429 (too many requests) raises, so the flow's retry policy applies; with the limiters
of throttle.tqflow in place the API never has to answer 429 (its GET /stats counts them)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from tqflow.runtime import task


class TooManyRequests(Exception):
    """The API refused a call: over its rate or concurrency limit."""


def _call(base_url: str, path: str, **query: object) -> Any:
    url = f"{base_url.rstrip('/')}{path}?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        if err.code == 429:
            raise TooManyRequests(f"{path}: 429 from the API") from err
        raise


@task
def list_pages(base_url: str, customer: str, count: int) -> list[int]:
    pages: list[int] = _call(base_url, f"/customers/{customer}/pages", count=count)["pages"]
    return pages


@task
def fetch_page(base_url: str, customer: str, page: int) -> dict[str, int]:
    invoices: dict[str, int] = _call(base_url, f"/customers/{customer}/invoices", page=page)
    return invoices


@task
def build_report(base_url: str, customer: str, pages: list[dict[str, int]]) -> dict[str, int]:
    _call(base_url, f"/customers/{customer}/report", pages=len(pages))
    return {
        "invoices": sum(p["invoices"] for p in pages),
        "total_cents": sum(p["total_cents"] for p in pages),
    }
