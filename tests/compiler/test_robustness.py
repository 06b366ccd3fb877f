"""Inputs that used to crash `tqc` with a traceback: each now gives a diagnostic with its own code, and
anything unexpected is "internal error, please report" with exit 3."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import tqflow.compiler
from tqflow.cli import tqc
from tqflow.cli.tqc import cli
from tqflow.compiler import compile_file, compile_source
from tqflow.dsl.diagnostics import render_all
from tqflow.dsl.formatter import FormatError, format_source
from tqflow.dsl.parser import MAX_NESTING
from tqflow.dsl.source import Source

TASKS = (
    b"from tqflow.runtime import task\n\n\n@task\ndef step(a: int, b: int = 0) -> int:\n    return a + b\n"
)
FLOW = "use tasks as t\n\nflow f {\n  job a = t.step(a=%s)\n}\n"


def project(tmp_path: Path, flow: bytes | str, tasks: bytes = TASKS) -> Path:
    (tmp_path / "tasks.py").write_bytes(tasks)
    path = tmp_path / "f.tqflow"
    path.write_bytes(flow if isinstance(flow, bytes) else flow.encode())
    return path


def codes(path: Path) -> list[str]:
    result = compile_file(path)
    render_all(result.diagnostics)  # rendering never fails either
    return [d.code for d in result.diagnostics]


def test_a_flow_file_that_is_not_utf8_is_tq0003_at_the_byte(tmp_path: Path) -> None:
    path = project(tmp_path, "use tasks as t\n# café\n".encode("latin-1") + (FLOW % 1).encode()[15:])
    result = compile_file(path)
    [diagnostic] = list(result.diagnostics)
    assert (diagnostic.code, diagnostic.span.line, diagnostic.span.column) == ("TQ0003", 2, 6)


def test_a_byte_order_mark_is_ignored_in_flows_and_modules(tmp_path: Path) -> None:
    path = project(tmp_path, b"\xef\xbb\xbf" + (FLOW % 1).encode(), tasks=b"\xef\xbb\xbf" + TASKS)
    assert codes(path) == []
    assert compile_source(Source(str(path), "\ufeff" + FLOW % 1)).ok  # as an editor may hand it over


def test_task_modules_are_decoded_as_python_decodes_them(tmp_path: Path) -> None:
    cookie = b"# -*- coding: latin-1 -*-\n# caf\xe9\n" + TASKS
    assert codes(project(tmp_path, FLOW % 1, tasks=cookie)) == []  # valid Python: read as latin-1
    assert codes(project(tmp_path, FLOW % '"x"', tasks=cookie)) == ["TQ0304"]  # and its types are checked
    broken = b"# caf\xe9\n" + TASKS  # no cookie: python itself refuses this file
    result = compile_file(project(tmp_path, FLOW % 1, tasks=broken))
    [diagnostic] = list(result.diagnostics)
    assert diagnostic.code == "TQ0101" and "0xe9" in diagnostic.message and "line 1" in diagnostic.message


@pytest.mark.parametrize(
    "value",
    [
        "[" * 300 + "]" * 300,
        " and ".join(["true"] * 500),
        " + ".join(["1"] * 500),
        "not " * 500 + "true",
        '{"a": ' * 200 + "1" + "}" * 200,
        'f"{' + "[" * 300 + "]" * 300 + '}"',
    ],
    ids=["brackets", "and", "plus", "not", "dicts", "fstring"],
)
def test_deep_nesting_is_tq0004_in_check_and_fmt(tmp_path: Path, value: str) -> None:
    path = project(tmp_path, FLOW % value)
    assert codes(path) == ["TQ0004"]
    with pytest.raises(FormatError, match="TQ0004"):
        format_source(path.read_text())


def test_nesting_just_under_the_limit_checks_formats_and_compiles(tmp_path: Path) -> None:
    depth = MAX_NESTING - 12  # the statements around the expression count too
    value = "[" * depth + "1" + "]" * depth
    text = (
        f"use tasks as t\n\nflow f {{\n  params {{\n    x: Json = {value}\n  }}\n  job a = t.step(a=1)\n}}\n"
    )
    path = project(tmp_path, text)
    result = compile_file(path)
    assert result.ok, render_all(result.diagnostics)
    assert result.plan is not None and result.plan.to_json()
    assert format_source(format_source(text)) == format_source(text)


def test_a_module_name_too_long_for_the_file_system_is_not_found(tmp_path: Path) -> None:
    path = project(tmp_path, "use " + "a" * 300 + " as t\n\nflow f {\n  job a = t.step(a=1)\n}\n")
    assert codes(path) == ["TQ0101"]
    long_import = project(tmp_path, 'import "%s.tqflow" as x\n' % ("b" * 300))
    assert codes(long_import) == ["TQ0104"]


def test_an_import_path_holding_a_nul_character_is_tq0104_not_a_crash(tmp_path: Path) -> None:
    """The compiler fuzz found it: a NUL byte in an import's path raised ValueError from the path's
    resolution ("internal error: embedded null byte")."""
    path = project(tmp_path, 'import "\x00eport.tqflow" as x\n')
    result = compile_file(path)
    assert [d.code for d in result.diagnostics.items] == ["TQ0104"], render_all(result.diagnostics)
    assert "NUL character" in render_all(result.diagnostics)


def test_a_file_over_the_size_limit_is_tq0002(tmp_path: Path) -> None:
    path = project(tmp_path, FLOW % ('"' + "x" * 10_000_000 + '"'))
    assert codes(path) == ["TQ0002"]


def test_a_long_string_literal_is_read_in_linear_time(tmp_path: Path) -> None:
    # The string terminal used to be `"(\\.|[^"\\\n])*"`: one regex group per character, 690 bytes a
    # character (6.9 GB for 10 MB). A megabyte now reads like any other file.
    path = project(tmp_path, FLOW % ('"' + "x\\n" * 500_000 + '"'))
    assert codes(path) == ["TQ0304"]  # a string for an int: checked, not crashed


def test_an_unexpected_exception_is_an_internal_error_with_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = project(tmp_path, FLOW % 1)

    def broken(ctx: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(tqflow.compiler, "PASSES", (broken,))
    result = compile_file(path)
    [diagnostic] = list(result.diagnostics)
    assert diagnostic.code == "TQ0000" and diagnostic.message.startswith("internal error, please report")
    run = CliRunner().invoke(cli, ["check", str(path)])
    assert run.exit_code == 3 and "internal error, please report" in run.output
    assert "Traceback" not in run.output


def test_tqc_main_turns_any_exception_into_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = project(tmp_path, FLOW % 1)

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("printer bug")

    monkeypatch.setattr("tqflow.cli.lang_commands.format_source", broken)
    monkeypatch.setattr(sys, "argv", ["tqc", "fmt", "--check", str(path)])
    monkeypatch.delenv("TQFLOW_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        tqc.main()
    assert exit_info.value.code == 3


def test_fmt_diff_without_check_prints_and_does_not_write(tmp_path: Path) -> None:
    messy = "use tasks as t\nflow f {\n   job a = t.step( a=1 )\n}\n"
    path = project(tmp_path, messy)
    run = CliRunner().invoke(cli, ["fmt", "--diff", str(path)])
    assert run.exit_code == 0, run.output
    assert "+  job a = t.step(a=1)" in run.output
    assert path.read_text() == messy
    CliRunner().invoke(cli, ["fmt", str(path)])
    assert path.read_text() != messy


def test_fmt_reports_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = project(tmp_path, b"flow f {\n  # \xff\n}\n")
    run = CliRunner().invoke(cli, ["fmt", "--check", str(path)])
    assert run.exit_code == 3 and "TQ0003" in run.output and "Traceback" not in run.output


def test_tqc_next_on_a_cron_that_can_never_fire_is_a_diagnostic(tmp_path: Path) -> None:
    path = project(
        tmp_path,
        'use tasks as t\n\nflow f {\n  schedule cron "0 12 30 2 *" tz "UTC"\n  job a = t.step(a=1)\n}\n',
    )
    run = CliRunner().invoke(cli, ["next", str(path), "--after", "2026-01-01T00:00:00+00:00"])
    assert run.exit_code == 3 and "TQ0601" in run.output and "can never fire" in run.output
    assert "Traceback" not in run.output
