"""Tasks for the retry and dead-letter example. Card "4242" works after two gateway timeouts;
"0000" is declined (never retried, dead-lettered at once); anything else breaks twice, then dies."""

from __future__ import annotations

from tqflow.runtime import task

_calls: dict[str, int] = {}


class GatewayTimeout(ConnectionError):
    """The payment gateway did not answer in time (worth retrying)."""


class CardDeclined(ValueError):
    """The bank said no (retrying does not help)."""


@task
def charge(order: str, card: str) -> dict[str, str]:
    seen = _calls.get(order, 0)
    _calls[order] = seen + 1
    if card == "0000":
        raise CardDeclined(f"card {card} declined for {order}")
    if card == "4242":
        if seen < 2:
            raise GatewayTimeout(f"gateway timeout #{seen + 1}")
        return {"order": order, "charge_id": f"ch_{order}"}
    raise RuntimeError(f"unexpected gateway reply for card {card}")


@task
def receipt(order: str, charge: dict[str, str]) -> str:
    return f"receipt for {order}: {charge['charge_id']}"


@task
def release_hold(order: str) -> str:
    return f"hold released for {order}"
