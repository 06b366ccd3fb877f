"""Event triggers in the compiler: `schedule event "NAME" { params { p = event.field }; key EXPR within D }`
lowers to a TriggerPlan of kind event (its params and key read `event`), the formatter keeps it, and the
clock's tools (`tqc next`, fire times) leave it out. Diagnostics are in golden/events.*."""

from __future__ import annotations

import datetime as dt

from tqflow.compiler import compile_source
from tqflow.dsl.diagnostics import Diagnostics
from tqflow.dsl.formatter import format_source
from tqflow.dsl.parser import parse
from tqflow.dsl.source import Source
from tqflow.plan.firetimes import next_fire_times

from helpers import FLOWS

FLOW = (FLOWS / "orders.tqflow").read_text()


def test_an_event_trigger_lowers_with_its_params_and_key() -> None:
    result = compile_source(Source(str(FLOWS / "orders.tqflow"), FLOW))
    assert result.plan is not None, [d.message for d in result.diagnostics]
    [trigger] = result.plan.flows["ship"].triggers
    assert (trigger.name, trigger.kind, trigger.event) == ("event:0", "event", "order.paid")
    assert trigger.params == {
        "order": {"attr": [{"var": "event"}, "id"]},
        "items": {"attr": [{"var": "event"}, "count"]},
    }
    assert trigger.key == {"attr": [{"var": "event"}, "id"]} and trigger.key_within_ms == 3_600_000
    [audit] = result.plan.flows["audit"].triggers
    assert audit.key is None and audit.key_within_ms is None
    assert next_fire_times(trigger, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 3) == []  # no clock


def test_the_formatter_keeps_event_triggers() -> None:
    messy = FLOW.replace('schedule event "order.paid" {', 'schedule   event   "order.paid"{').replace(
        "key event.id within 1h", "key   event.id   within   1h"
    )
    formatted = format_source(messy)
    assert formatted == FLOW
    assert parse(Source("a.tqflow", formatted), Diagnostics()) == parse(
        Source("b.tqflow", FLOW), Diagnostics()
    )


def test_event_key_and_within_stay_names_elsewhere() -> None:
    text = FLOW.replace("items: Int = 1", 'items: Int = 1\n    key: Str = "k"\n    within: Int = 2').replace(
        "job label = s.note(text=params.order)", "job label = s.note(text=params.key)"
    )
    result = compile_source(Source(str(FLOWS / "orders.tqflow"), text))
    assert result.plan is not None, [d.message for d in result.diagnostics]
    assert result.plan.flows["ship"].jobs["label"].args == {"text": {"param": "key"}}
