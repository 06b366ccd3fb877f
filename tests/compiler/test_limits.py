"""Flow control in the language: `limiter` declarations, `limit NAME [by EXPR]` and `fair by EXPR [weight
EXPR]` parse, format and lower to the plan contract (`LimiterPlan`, `LimitUse`, `FairPlan`) that the
runtime reads. The diagnostics are in golden/limits.out and golden/syntax_limiter.out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tqflow.compiler import compile_file, compile_source
from tqflow.dsl.diagnostics import render_all
from tqflow.dsl.formatter import format_source
from tqflow.plan import Plan
from tqflow.plan.model import FairPlan, LimiterPlan, LimitUse

from helpers import source

GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = Path(__file__).parents[2] / "examples"
SNAPSHOTS = Path(__file__).parent / "snapshots"
HEAD = "use sample_tasks as t\n"


def plan(text: str, name: str = "test.tqflow") -> Plan:
    result = compile_source(source(HEAD + text, name))
    assert result.plan is not None, render_all(result.diagnostics)
    return result.plan


def errors(text: str) -> list[tuple[str, str]]:
    result = compile_source(source(HEAD + text))
    return [(d.code, d.message) for d in result.diagnostics]


def test_every_construct_lowers_in_the_file_that_uses_them_all() -> None:
    result = compile_file(GOLDEN / "ok_everything.tqflow")
    assert result.plan is not None, render_all(result.diagnostics)
    flow = result.plan.flows["nightly"]
    assert flow.limiters == {
        "ok_everything.gateway": LimiterPlan(
            name="ok_everything.gateway", kind="rate", rate=600, period_ms=60_000, burst=50
        ),
        "ok_everything.ids_api": LimiterPlan(name="ok_everything.ids_api", kind="concurrency", limit=4),
        "limits.db": LimiterPlan(name="limits.db", kind="concurrency", limit=3),  # the declaring file's name
    }
    charged = flow.jobs["charged"]
    assert charged.limits == [
        LimitUse(  # read from the upstream result when the job is ready
            limiter="ok_everything.gateway", by={"attr": [{"index": [{"out": "orders"}, {"lit": 0}]}, "id"]}
        ),
        LimitUse(limiter="limits.db"),
    ]
    assert charged.fair == FairPlan(key={"run": "id"})  # from `defaults`
    numbers = flow.jobs["numbers"]
    assert numbers.limits == [LimitUse(limiter="ok_everything.ids_api")]
    assert numbers.fair == FairPlan(key={"param": "limit"}, weight={"lit": 2})  # its own replaces defaults
    assert flow.jobs["orders"].limits == [] and flow.jobs["orders"].fair == FairPlan(key={"run": "id"})


@pytest.mark.parametrize(
    ("rate", "count", "period_ms"),
    [
        ("10/s", 10, 1_000),
        ("600/m", 600, 60_000),
        ("5/h", 5, 3_600_000),
        ("2/d", 2, 86_400_000),
        ("100/10s", 100, 10_000),
        ("7/250ms", 7, 250),
        ("3 / 2m", 3, 120_000),
    ],
)
def test_a_rate_is_a_count_per_period(rate: str, count: int, period_ms: int) -> None:
    text = f"limiter api = rate({rate})\nflow f {{\n  job a = t.source(n=1) {{ limit api }}\n}}\n"
    limiter = plan(text).flows["f"].limiters["test.api"]
    assert (limiter.kind, limiter.rate, limiter.period_ms, limiter.burst) == ("rate", count, period_ms, None)


def test_burst_and_concurrency_lower_and_only_used_limiters_are_in_the_flow() -> None:
    text = (
        "limiter api = rate(10/s, burst=20)\nlimiter db = concurrency(3)\nlimiter unused = concurrency(1)\n"
        "flow f {\n  job a = t.source(n=1) { limit api; limit db }\n  job b = t.source(n=2) { limit db }\n}\n"
        "flow g {\n  job c = t.source(n=1)\n}\n"
    )
    flows = plan(text).flows
    assert flows["f"].limiters == {
        "test.api": LimiterPlan(name="test.api", kind="rate", rate=10, period_ms=1000, burst=20),
        "test.db": LimiterPlan(name="test.db", kind="concurrency", limit=3),
    }
    assert flows["f"].jobs["a"].limits == [LimitUse(limiter="test.api"), LimitUse(limiter="test.db")]
    assert (
        flows["g"].limiters == {} and flows["g"].jobs["c"].limits == [] and flows["g"].jobs["c"].fair is None
    )


def test_a_key_that_reads_an_upstream_result_makes_the_job_wait_for_it() -> None:
    text = (
        "limiter api = rate(10/s)\nflow f {\n"
        '  job k = t.flaky(key="acme", fail_times=0)\n'
        '  job w = t.flaky(key="w", fail_times=0)\n'
        "  job a = t.source(n=1) {\n    limit api by k.out\n    fair by w.out weight 2.5\n  }\n}\n"
    )
    flow = plan(text).flows["f"]
    job = flow.jobs["a"]
    assert job.data_deps == ["k", "w"] and job.waits_for == ["k", "w"]  # as for data it reads
    assert flow.order.index("a") > max(flow.order.index("k"), flow.order.index("w"))
    assert job.limits == [LimitUse(limiter="test.api", by={"out": "k"})]
    assert job.fair == FairPlan(key={"out": "w"}, weight={"lit": 2.5})
    assert flow.dependents()["k"] == ["a"]


def test_keys_may_be_strings_ints_fstrings_and_untyped_values() -> None:
    text = (
        "limiter api = rate(10/s)\nlimiter db = concurrency(2)\nlimiter x = concurrency(2)\n"
        "flow f {\n  params { tenant: Str; shard: Int = 3; day: Date = run.date; extra: Json = none; "
        "w: Float = 1.5 }\n"
        "  job a = t.source(n=1) {\n    limit api by params.tenant\n    limit db by params.shard\n"
        '    limit x by f"{params.day}"\n    fair by params.extra weight params.w\n  }\n}\n'
    )
    job = plan(text).flows["f"].jobs["a"]
    assert [u.by for u in job.limits] == [
        {"param": "tenant"},
        {"param": "shard"},
        {"fstr": [{"param": "day"}]},
    ]
    assert job.fair == FairPlan(key={"param": "extra"}, weight={"param": "w"})


def test_an_imported_limiter_keeps_the_name_of_the_file_that_declares_it() -> None:
    text = 'import "../compiler/golden/lib/limits.tqflow" as shared\nflow f {\n'
    text += "  job a = t.source(n=1) {\n    limit shared.mail by run.date\n  }\n}\n"
    # run.date is a Date: not a key
    assert errors(text) == [("TQ0804", "a limit key is a string or an int, but this is Date")]
    ok = plan(text.replace("by run.date", "by run.id"), "importer.tqflow").flows["f"]
    assert ok.limiters == {
        "limits.mail": LimiterPlan(name="limits.mail", kind="rate", rate=100, period_ms=3_600_000)
    }
    assert ok.jobs["a"].limits == [LimitUse(limiter="limits.mail", by={"run": "id"})]


def test_a_failed_import_keeps_its_limiters_quiet() -> None:
    text = 'import "nowhere.tqflow" as gone\nflow f {\n  job a = t.source(n=1) { limit gone.api }\n}\n'
    assert [code for code, _ in errors(text)] == ["TQ0104"]


def test_limit_in_defaults_is_refused_and_a_self_reading_key_is_not_a_cycle() -> None:
    assert errors(
        "limiter api = rate(1/s)\nflow f {\n  defaults { limit api }\n  job a = t.source(n=1)\n}\n"
    ) == [("TQ0502", "`limit` belongs on a job, not in `defaults`")]
    own = "limiter api = rate(1/s)\nflow f {\n  job a = t.source(n=1) { limit api by a.out }\n}\n"
    assert errors(own) == [("TQ0804", "the limit key of job `a` reads its own result")]  # and no TQ0401


def test_a_key_that_reads_a_downstream_job_is_a_cycle() -> None:
    text = (
        "limiter api = rate(1/s)\nflow f {\n  job a = t.source(n=1) { limit api by b.out }\n"
        "  job b = t.total(values=a.out)\n}\n"
    )
    assert [code for code, _ in errors(text)] == ["TQ0401"]


def test_weights_must_be_positive_numbers() -> None:
    body = (
        'flow f {{\n  params {{ w: Int = 1; s: Str = "x"; o: Float? = none }}\n'
        "  job a = t.source(n=1) {{ fair by run.id weight {} }}\n}}\n"
    )
    assert errors(body.format("params.w")) == []
    for weight in ("0", "0.0", "true", '"3"', "none"):
        assert [code for code, _ in errors(body.format(weight))] == ["TQ0805"], weight
    assert errors(body.format("params.s")) == [("TQ0805", "a fairness weight is a number, but this is Str")]
    assert errors(body.format("params.o")) == [
        ("TQ0805", "a fairness weight is a number, but this is Float?")
    ]


def test_limiter_syntax_formats_canonically_and_idempotently() -> None:
    messy = (
        "use sample_tasks as t\n"
        "flow f {\n  defaults {fair  by params.c   weight params.weight}\n"
        "  params { c: Str; weight: Int = 1 }\n"
        "  job a = t.source(n=1) {limit   api  by  params.c ; limit db}  # two limiters\n}\n"
        "limiter db=concurrency( 5 )   # the database\n"
        "limiter   api = rate( 10 / s ,burst = 20 )\n"
    )
    formatted = format_source(messy)
    assert formatted == (
        "use sample_tasks as t\n\n"
        "limiter db = concurrency(5)  # the database\n"
        "limiter api = rate(10/s, burst=20)\n\n"
        "flow f {\n  params {\n    c: Str\n    weight: Int = 1\n  }\n"
        "  defaults { fair by params.c weight params.weight }\n"
        "  job a = t.source(n=1) {\n    limit api by params.c\n    limit db\n  }  # two limiters\n}\n"
    )
    assert format_source(formatted) == formatted
    assert compile_source(source(formatted)).ok


def test_the_throttle_example_compiles_and_matches_its_plan_snapshot() -> None:
    """Regenerate with TQFLOW_UPDATE_SNAPSHOTS=1 after an intended change to the plan."""
    result = compile_file(EXAMPLES / "throttle" / "throttle.tqflow")
    assert result.plan is not None, render_all(result.diagnostics)
    assert not result.diagnostics.items  # no warnings either
    flow = result.plan.flows["sync_invoices"]
    assert set(flow.limiters) == {"throttle.api", "throttle.reports"}
    assert flow.jobs["fetch"].limits == [LimitUse(limiter="throttle.api", by={"param": "customer"})]
    assert flow.jobs["report"].fair == FairPlan(key={"param": "customer"}, weight={"param": "weight"})
    text = json.dumps(json.loads(result.plan.to_json()), indent=2, sort_keys=True) + "\n"
    snapshot = SNAPSHOTS / "throttle.plan.json"
    if os.environ.get("TQFLOW_UPDATE_SNAPSHOTS"):
        snapshot.write_text(text)
    assert text == snapshot.read_text()


def test_keys_read_late_are_made_of_fields_indexes_fstrings_and_plus() -> None:
    head = "limiter api = rate(10/s)\nflow f {\n  job k = t.double(values=[1, 2])\n"
    ok = head + (
        '  job a = t.source(n=u) for u in k.out {\n    limit api by f"{k.out[1]}-{k.out[0]}"\n'
        "    fair by k.out[0] + 1 weight k.out[1]\n  }\n}\n"
    )
    job = plan(ok).flows["f"].jobs["a"]
    first, second = {"index": [{"out": "k"}, {"lit": 0}]}, {"index": [{"out": "k"}, {"lit": 1}]}
    assert job.limits == [LimitUse(limiter="test.api", by={"fstr": [second, "-", first]})]
    assert job.fair == FairPlan(key={"op": "+", "args": [first, {"lit": 1}]}, weight=second)
    minus = head + "  job a = t.source(n=1) { limit api by k.out[0] - 1 }\n}\n"
    assert [code for code, _ in errors(minus)] == ["TQ0804"]
    early = head + "  params { n: Int = 2 }\n  job a = t.source(n=1) { limit api by params.n - 1 }\n}\n"
    assert errors(early) == []  # evaluated when the run starts: any expression


def test_a_fan_outs_item_can_key_its_limit_and_fair_share() -> None:
    """Each item's key is evaluated by the parent's attempt when it fans out (runtime/fanout.py), so a
    key or weight may read the item (tests/runtime/test_flow_limits.py runs such a flow)."""
    text = (
        "limiter api = rate(10/s)\nflow f {\n  job k = t.double(values=[1, 2])\n"
        '  job a = t.source(n=u) for u in k.out {\n    limit api by f"c-{u}"\n    fair by k.out[0] weight u\n'
        "  }\n}\n"
    )
    assert errors(text) == []
    job = plan(text).flows["f"].jobs["a"]
    assert job.limits == [LimitUse(limiter="test.api", by={"fstr": ["c-", {"var": "u"}]})]
    assert job.fair is not None and job.fair.weight == {"var": "u"}


def test_the_new_keywords_are_still_names() -> None:
    text = (
        "limiter fair = rate(1/s)\nlimiter by = concurrency(2)\nlimiter weight = concurrency(2)\n"
        'flow f {\n  params { by: Str = "x"; weight: Int = 2; limit: Int = 1; fair: Str = "f" }\n'
        "  job limit = t.source(n=params.limit) {\n    limit fair by params.by\n    limit by by params.fair\n"
        "    limit weight\n    fair by params.fair weight params.weight\n  }\n"
        "  job by = t.total(values=limit.out)\n}\n"
    )
    flow = plan(text).flows["f"]
    assert flow.jobs["limit"].limits == [
        LimitUse(limiter="test.fair", by={"param": "by"}),
        LimitUse(limiter="test.by", by={"param": "fair"}),
        LimitUse(limiter="test.weight"),
    ]
    assert flow.jobs["limit"].fair == FairPlan(key={"param": "fair"}, weight={"param": "weight"})
    assert flow.jobs["by"].data_deps == ["limit"]
    formatted = format_source(HEAD + text)
    assert format_source(formatted) == formatted


def test_limiters_with_one_plan_name_must_be_one_definition(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "api.tqflow").write_text("limiter calls = rate(10/s)\n")
    main = tmp_path / "api.tqflow"  # the same file name: its `calls` is `api.calls` too
    flow = (
        "flow f {\n  job a = t.source(n=1) { limit calls }\n  job b = t.source(n=2) { limit lib.calls }\n}\n"
    )
    main.write_text(
        f'use sample_tasks as t\nimport "lib/api.tqflow" as lib\nlimiter calls = rate(20/s)\n{flow}'
    )
    (tmp_path / "sample_tasks.py").write_text(
        (Path(__file__).parents[1] / "flows" / "sample_tasks.py").read_text()
    )
    bad = compile_file(main)
    assert [(d.code, d.message) for d in bad.diagnostics] == [
        ("TQ0103", "two limiters are named `api.calls` with different definitions")
    ]
    main.write_text(main.read_text().replace("rate(20/s)", "rate(10/s)"))  # the same limit: one limiter
    same = compile_file(main)
    assert same.plan is not None, render_all(same.diagnostics)
    jobs = same.plan.flows["f"].jobs
    assert jobs["a"].limits == jobs["b"].limits == [LimitUse(limiter="api.calls")]
    assert list(same.plan.flows["f"].limiters) == ["api.calls"]
