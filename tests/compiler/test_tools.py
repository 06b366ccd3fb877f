"""`tqc fmt`, `tqc graph`, `tqc next`, `tqc check --format json`, `tqc explain` from the command line."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from tqflow.cli.tqc import cli
from tqflow.compiler.codes import CODES
from tqflow.dsl.formatter import format_source
from tqflow.plan import TriggerPlan
from tqflow.plan.firetimes import next_fire_times

ROOT = Path(__file__).parents[2]
GOLDEN = Path(__file__).parent / "golden"
MESSY = """# header
use  sample_tasks   as t    # the tasks
flow   f {
  job b = t.total(values = a.out)   {   priority high ; retry fixed(1s), attempts=2 }
    job a=t.source(n=1)
  # the end
}
"""


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_fmt_rewrites_check_fails_then_passes(tmp_path: Path) -> None:
    path = tmp_path / "messy.tqflow"
    path.write_text(MESSY)
    assert run("fmt", "--check", str(path))[0] == 1
    assert path.read_text() == MESSY  # --check changes nothing
    assert run("fmt", str(path))[0] == 0
    formatted = path.read_text()
    assert formatted == format_source(MESSY)
    assert (
        "  job b = t.total(values=a.out) {\n    priority high\n    retry fixed(1s), attempts=2\n  }"
        in formatted
    )
    assert "# header" in formatted and "# the tasks" in formatted and "  # the end\n}" in formatted
    assert run("fmt", "--check", str(path))[0] == 0


def test_fmt_refuses_a_file_that_does_not_parse(tmp_path: Path) -> None:
    path = tmp_path / "bad.tqflow"
    path.write_text("flow f {\n  job a t.f()\n}\n")
    code, output = run("fmt", str(path))
    assert code == 3 and "expected `=` after the job name" in output
    assert path.read_text() == "flow f {\n  job a t.f()\n}\n"


def test_examples_and_valid_golden_files_are_formatted_and_check_clean() -> None:
    files = [*ROOT.glob("examples/*/*.tqflow"), GOLDEN / "ok_everything.tqflow"]
    assert run("fmt", "--check", *map(str, files))[0] == 0
    assert run("check", *map(str, files))[0] == 0


def test_every_golden_file_that_parses_formats_idempotently() -> None:
    for path in GOLDEN.glob("*.tqflow"):
        if path.stem.startswith("syntax_"):
            continue
        once = format_source(path.read_text(), str(path))
        assert format_source(once) == once, path.name


def test_check_json_gives_the_diagnostics_as_data() -> None:
    code, output = run("check", "--format", "json", str(GOLDEN / "timezones.tqflow"))
    assert code == 1
    items = json.loads(output)
    assert [i["code"] for i in items] == ["TQ0602", "TQ0602", "TQ0603", "TQ0602"]
    assert items[0]["help"] == "did you mean `Europe/Paris`?"
    assert items[0]["line"] == 4 and items[2]["severity"] == "warning"


def test_every_code_has_an_explanation() -> None:
    for code in CODES:
        exit_code, output = run("explain", code)
        assert exit_code == 0 and output.startswith(code) and len(output) > 80


def test_graph_mermaid_and_dot_show_data_and_after_edges() -> None:
    code, mermaid = run("graph", str(GOLDEN / "ok_everything.tqflow"), "--flow", "nightly")
    assert code == 0 and mermaid.startswith("flowchart TD")
    assert "job_orders --> job_charged" in mermaid
    assert "job_orders -. failed .-> job_alert" in mermaid
    assert 'job_charged[["charged' in mermaid  # fan-out shape
    code, dot = run("graph", str(GOLDEN / "ok_everything.tqflow"), "--flow", "nightly", "--format", "dot")
    assert code == 0 and '"orders" -> "charged";' in dot
    assert '"counted" -> "alert" [style=dashed, label="failed"];' in dot


def test_graph_svg_uses_graphviz_or_says_what_to_install(tmp_path: Path) -> None:
    out = tmp_path / "g.svg"
    code, output = run(
        "graph", str(GOLDEN / "ok_everything.tqflow"), "-f", "nightly", "--format", "svg", "-o", str(out)
    )
    if shutil.which("dot"):
        assert code == 0 and "<svg" in out.read_text()
    else:
        assert code == 1 and "install Graphviz" in output.lower().replace(
            "install graphviz", "install Graphviz"
        )


def test_next_lists_fire_times_in_the_zone_of_the_schedule() -> None:
    code, output = run(
        "next",
        str(GOLDEN / "ok_everything.tqflow"),
        "--flow",
        "nightly",
        "--count",
        "3",
        "--after",
        "2026-03-27T12:00:00+00:00",
    )
    assert code == 0
    assert "  2026-03-28T02:30:00+01:00\n  2026-03-29T03:30:00+02:00\n  2026-03-30T02:30:00+02:00" in output
    assert "every:1" in output and "2026-03-27T18:00:00+00:00" in output


def trigger(**fields: object) -> TriggerPlan:
    return TriggerPlan.model_validate({"name": "t", "kind": "cron", "timezone": "Europe/Paris", **fields})


def test_dst_policies_skip_shift_first_and_both() -> None:
    spring = dt.datetime(2026, 3, 28, 12, tzinfo=dt.UTC)
    autumn = dt.datetime(2026, 10, 24, 12, tzinfo=dt.UTC)
    daily = {"cron": "30 2 * * *"}

    def days(plan: TriggerPlan, after: dt.datetime, n: int) -> list[str]:
        return [t.isoformat() for t in next_fire_times(plan, after, n)]

    assert days(trigger(**daily, on_dst_gap="skip"), spring, 2) == [
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]
    assert days(trigger(**daily, on_dst_gap="shift"), spring, 1) == ["2026-03-29T03:30:00+02:00"]
    assert days(trigger(**daily, on_dst_repeat="first"), autumn, 2) == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]
    assert days(trigger(**daily, on_dst_repeat="both"), autumn, 2) == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
    ]
    zone = ZoneInfo("Europe/Paris")
    assert all(t.tzinfo == zone for t in next_fire_times(trigger(**daily), spring, 5))
    assert re.fullmatch(r"\d{4}-.*", days(trigger(kind="every", every_ms=60_000), spring, 1)[0])
