"""Every construct lowers to the plan the runtime reads (ok_everything.tqflow uses all of them)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tqflow.compiler import compile_file, compile_source
from tqflow.dsl.diagnostics import render_all
from tqflow.plan import CatchupPlan, RetryPlan, RetryRule, UniquePlan
from tqflow.runtime.expressions import Environment, evaluate

from helpers import source

GOLDEN = Path(__file__).parent / "golden"


def everything() -> dict[str, object]:
    result = compile_file(GOLDEN / "ok_everything.tqflow")
    assert result.plan is not None, render_all(result.diagnostics)
    return result.plan.flows["nightly"].model_dump()


def test_triggers_lower_with_zone_catchup_overlap_and_dst_policies() -> None:
    cron, every, at = everything()["triggers"]  # type: ignore[misc]
    assert cron["kind"] == "cron" and cron["cron"] == "30 2 * * *" and cron["timezone"] == "Europe/Paris"
    assert cron["catchup"] == CatchupPlan(kind="last", count=3).model_dump()
    assert (cron["overlap"], cron["on_dst_gap"], cron["on_dst_repeat"]) == ("skip", "shift", "first")
    assert cron["params"] == {
        "day": {"op": "-", "args": [{"run": "date"}, {"dur": 86_400_000}]},
        "limit": {"lit": 20},
    }
    assert every["every_ms"] == 6 * 3_600_000 and every["name"] == "every:1"
    assert at["at"] == "2026-12-01T09:00:00+01:00"


def test_retry_block_lowers_to_rules_with_qualified_exception_names() -> None:
    charged = everything()["jobs"]["charged"]  # type: ignore[index]
    retry = RetryPlan.model_validate(charged["retry"])
    assert retry.kind == "fixed" and retry.attempts == 2 and retry.delay_ms == 5000  # the `else` rule
    assert retry.never == ["shop.CardDeclined"]
    [rule] = retry.rules
    assert rule == RetryRule(
        on=["shop.GatewayTimeout", "builtins.TimeoutError"],
        policy=RetryPlan(kind="exponential", attempts=8, delay_ms=1000, max_delay_ms=30_000, jitter="full"),
    )


def test_job_settings_fan_out_unique_dead_letter_and_imported_policy() -> None:
    jobs = everything()["jobs"]
    charged = jobs["charged"]  # type: ignore[index]
    assert charged["fan_out"] == {"var": "o", "over": {"out": "orders"}}
    assert charged["args"] == {"order": {"var": "o"}}
    assert UniquePlan.model_validate(charged["unique"]) == UniquePlan(
        key={"param": "day"}, within_ms=86_400_000, conflict="skip"
    )
    assert charged["dead_letter"] == "payments" and charged["deadline_ms"] == 3_600_000
    numbers = jobs["numbers"]  # type: ignore[index]
    assert numbers["retry"]["jitter"] == "10%" and numbers["retry"]["attempts"] == 5  # policies.db_flaky
    assert jobs["counted"]["delay_ms"] == 500  # type: ignore[index]
    assert jobs["logged"]["task"]["module"] == "tqflow.stdlib.log"  # type: ignore[index]


def test_multi_line_dicts_and_date_literals_lower_and_evaluate() -> None:
    jobs = everything()["jobs"]
    fields = jobs["logged"]["args"]["fields"]  # type: ignore[index]
    env = Environment(params={"day": "2026-01-31"}, outputs={"counted": 3})
    assert evaluate(fields, env) == {"day": "2026-01-31", "count": 3}
    at = jobs["stamped"]["args"]["at"]  # type: ignore[index]
    assert at == {"datetime": "2026-12-01T09:00:00+01:00"}
    assert evaluate(at, env) == dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)
    assert evaluate({"op": "-", "args": [{"date": "2026-03-01"}, {"dur": 86_400_000}]}, env) == dt.date(
        2026, 2, 28
    )


def test_the_same_source_always_gives_the_same_plan_bytes() -> None:
    first = compile_file(GOLDEN / "ok_everything.tqflow").plan
    second = compile_file(GOLDEN / "ok_everything.tqflow").plan
    assert first is not None and second is not None
    assert first.to_json() == second.to_json() and first.id == second.id


def test_imported_policies_are_usable_and_a_missing_one_has_did_you_mean() -> None:
    text = 'use sample_tasks as t\nimport "../compiler/golden/lib/policies.tqflow" as p\n'
    ok = compile_source(source(text + "flow f {\n  job a = t.source(n=1) {\n    retry p.quick\n  }\n}\n"))
    assert ok.plan is not None, render_all(ok.diagnostics)
    assert ok.plan.flows["f"].jobs["a"].retry.delay_ms == 500
    bad = compile_source(source(text + "flow f {\n  job a = t.source(n=1) {\n    retry p.quik\n  }\n}\n"))
    assert [d.help for d in bad.diagnostics] == ["did you mean `p.quick`?"]


def test_keywords_added_by_the_language_are_still_names() -> None:
    text = (
        "use sample_tasks as t\nflow f {\n  params {\n    at: Int = 1\n    every: Int = 2\n"
        "    schedule: Int = 3\n  }\n  job on = t.source(n=params.at + params.every + params.schedule)\n}\n"
    )
    result = compile_source(source(text))
    assert result.ok, render_all(result.diagnostics)


def test_an_imported_flow_is_deployed_under_its_new_name() -> None:
    result = compile_file(GOLDEN / "ok_everything.tqflow")
    assert result.plan is not None
    heartbeat = result.plan.flows["heartbeat"]
    assert heartbeat.name == "heartbeat" and list(heartbeat.jobs) == ["beat"]
    assert heartbeat.modules == ["tqflow.stdlib.log"]
    assert heartbeat.triggers[0].every_ms == 300_000
