"""Durations as the language writes them (`500ms 30s 5m 2h 1d`, or `1m30s`), in milliseconds.

The parser reads duration literals with `parse_duration`; the Python API and `--param` values take the
longer forms through `to_ms`. Both share these units, so `30s` means the same everywhere."""

from __future__ import annotations

import datetime as dt
import re

from tqflow.errors import DurationError

DURATION_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_ONE = re.compile(r"([0-9]+)(ms|s|m|h|d)")

Duration = str | int | float | dt.timedelta  # "30s" / "500ms", seconds (int or float), or a timedelta


def parse_duration(text: str) -> int:
    """One number and one unit: `30s` → 30000."""
    match = _ONE.fullmatch(text)
    if not match:
        raise DurationError(f"not a duration: {text!r} (a number and one of {', '.join(DURATION_UNITS_MS)})")
    return int(match.group(1)) * DURATION_UNITS_MS[match.group(2)]


def parse_compound(text: str, what: str = "duration") -> int:
    """Several number-unit pairs, spaces allowed: `1m30s`, `1h 15m`."""
    rest = text.strip()
    parts = _ONE.findall(rest)
    if not parts or "".join(n + u for n, u in parts) != rest.replace(" ", ""):
        units = ", ".join(DURATION_UNITS_MS)
        raise DurationError(f"{what} {text!r} is not a duration (use a number and one of {units})")
    return sum(int(number) * DURATION_UNITS_MS[unit] for number, unit in parts)


def to_ms(value: Duration, what: str = "duration") -> int:
    """Milliseconds from "1m30s"-style text, seconds (int or float), or a timedelta."""
    if isinstance(value, dt.timedelta):
        ms = int(value.total_seconds() * 1000)
    elif isinstance(value, bool):
        raise DurationError(f"{what} must be a duration, not a boolean")
    elif isinstance(value, int | float):
        ms = int(value * 1000)
    elif isinstance(value, str):
        ms = parse_compound(value, what)
    else:
        raise DurationError(f"{what} must be a duration like '30s', a number of seconds or a timedelta")
    if ms < 0:
        raise DurationError(f"{what} must not be negative, got {value!r}")
    return ms


def format_duration(ms: int) -> str:
    """The shortest exact spelling in the language's units: 60000 → `1m`, 90000 → `1m30s`."""
    if ms == 0:
        return "0s"
    out, rest = [], ms
    for unit in ("d", "h", "m", "s", "ms"):
        size = DURATION_UNITS_MS[unit]
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)
