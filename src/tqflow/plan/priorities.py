"""The five priority levels: one enum, converted once at the edges (names in the language and the API,
numbers in stream keys and Lua, where 0 is the most urgent)."""

from __future__ import annotations

import enum

from tqflow.errors import PlanValueError


class Priority(enum.IntEnum):
    CRITICAL = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3
    BATCH = 4

    @property
    def label(self) -> str:
        """The name the language and the API use: `critical` … `batch`."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int | Priority) -> Priority:
        """A level from its name (`"high"`) or number (`1`); anything else raises ValueError."""
        if isinstance(value, Priority):
            return value
        if isinstance(value, bool):
            raise PlanValueError(f"priority must be one of {', '.join(PRIORITIES)}, got {value!r}")
        if isinstance(value, int):
            if 0 <= value < len(cls):
                return cls(value)
        elif isinstance(value, str) and value.lower() in PRIORITIES:
            return cls[value.upper()]
        raise PlanValueError(f"priority must be one of {', '.join(PRIORITIES)}, got {value!r}")

    @classmethod
    def label_of(cls, level: object) -> str:
        """The name of a level as Redis stores it (`b"1"`, `"1"`, `1`) → `high`; `""` for none or an
        unknown number (a record written by something else: shown, not trusted)."""
        try:
            number = int(level)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return ""
        return cls(number).label if 0 <= number < len(cls) else ""


# ("critical", "high", "normal", "low", "batch"): index = level
PRIORITIES: tuple[str, ...] = tuple(p.label for p in Priority)
LEVELS = len(Priority)
