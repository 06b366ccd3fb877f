"""Payload encoding. JSON by default; values tasks commonly return (dates, decimals, pydantic
models, dataclasses, sets) are converted to JSON types on the way out."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
from typing import Any


def to_json_type(value: Any) -> Any:
    """A JSON type for a value `json` cannot encode itself."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"cannot encode a {type(value).__name__} as JSON")


def encode(value: Any) -> str:
    return json.dumps(value, default=to_json_type, separators=(",", ":"), ensure_ascii=False)


def decode(text: str | bytes | None) -> Any:
    return None if text is None or text == "" else json.loads(text)
