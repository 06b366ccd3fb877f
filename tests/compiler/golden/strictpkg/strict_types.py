"""Type definitions imported by strict.py (read with `ast`, never run)."""

from typing import Literal, NewType, TypeAlias

Counts = list[int]
UserId = NewType("UserId", int)
Mode: TypeAlias = Literal["fast", "safe"]
