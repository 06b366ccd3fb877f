"""Tasks whose annotations need a type checker's care: optionals, positional-only parameters, aliases,
NewTypes, Literal, dict value types, model fields (read with `ast`, never run)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from tqflow.runtime import task

from .strict_types import Counts, Mode, UserId


class Report(BaseModel):
    rows: int
    label: str | None = None


@dataclass
class Point:
    x: float
    y: float


@task
def maybe() -> int | None:
    return None


@task
def need(n: int) -> int:
    return n


@task
def first(n: int, /, m: int = 0) -> int:
    return n + m


@task
def counts() -> Counts:
    return [1]


@task
def per_user(user: UserId, mode: Mode = "fast") -> Report:
    return Report(rows=user)


@task
def weights(by_name: dict[str, int]) -> Point:
    return Point(0, 0)


@task
def rows() -> list[int]:
    return [1]
