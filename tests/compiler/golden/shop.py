"""Tasks and exceptions used by the golden files (read with `ast` by the compiler, never run)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel

from tqflow.runtime import task


class Order(BaseModel):
    id: int
    amount: Decimal


class GatewayTimeout(Exception):
    pass


class CardDeclined(Exception):
    pass


@task
def list_orders(day: date) -> list[Order]:
    return []


@task
def charge(order: Order, retries: int = 0) -> str:
    return str(order.id)


@task
def count(values: list[int]) -> int:
    return len(values)


@task
def ids(limit: int) -> list[int]:
    return list(range(limit))


@task
def greet(name: str, times: int = 1, loud: bool | None = None) -> str:
    return name * times


@task
def stamp(at: datetime, label: str | None = None) -> dict[str, str]:
    return {"at": at.isoformat(), "label": label or ""}


@task
def total(amounts: list[Decimal]) -> Decimal:
    return sum(amounts, Decimal(0))


@task
def notify(message: str) -> None:
    print(message)


def helper() -> None:
    """Not a task: calling it from a flow is an error."""
