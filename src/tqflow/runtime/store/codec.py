"""Payload encoding. JSON by default; values tasks commonly return (dates, decimals, pydantic
models, dataclasses, sets) are converted to JSON types on the way out."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
from typing import Any

from tqflow.errors import UsageTypeError


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
    raise UsageTypeError(f"cannot encode a {type(value).__name__} as JSON")


_ENCODER = json.JSONEncoder(default=to_json_type, separators=(",", ":"), ensure_ascii=False)


def encode(value: Any) -> str:
    """JSON text. An int, a bool or None (what no-op and counting tasks return) skip the encoder's set-up:
    the text is the one it writes (an int's repr; past the interpreter's digit limit both raise)."""
    kind = type(value)
    if kind is int:
        return int.__repr__(value)
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    return _ENCODER.encode(value)


def decode(text: str | bytes | None) -> Any:
    """A stored value: JSON text, or a payload with its header (`J-|…`, see runtime/store/payloads.py)."""
    if text is None or text == "":
        return None
    if isinstance(text, str) and len(text) > 2 and text[0] in "JMP" and text[1] in "-zbZS":
        from tqflow.runtime.store import payloads  # payloads builds on this module

        return payloads.value(text)
    return json.loads(text)
