"""Diagnostics as you type are exactly `tqc check`'s: same codes, messages, severities and ranges."""

from __future__ import annotations

import json
from typing import Any

import pytest
from lsprotocol import types

from cli_runner import tqc
from conftest import HELLO, Editor, dedent, position

pytestmark = pytest.mark.asyncio(loop_scope="module")

BROKEN = dedent(
    """
    use tasks as t

    flow hello {
      params {
        name: Str = "world"
      }

      job greeting = t.gret(name=params.name)
      job loud = t.shout(txt=greeting.out, text=params.nme) {
        after greting
      }
      output title = loud.out
    }
    """
)


def tqc_check(editor: Editor, name: str) -> list[dict[str, Any]]:
    done = tqc("check", "--format", "json", str(editor.path(name)))
    assert done.returncode in (0, 1), done.stderr
    items: list[dict[str, Any]] = json.loads(done.stdout)
    return items


def as_check(d: types.Diagnostic) -> dict[str, Any]:
    """An LSP diagnostic in `tqc check --format json` terms (the texts here are ASCII)."""
    return {
        "code": d.code,
        "severity": "error" if d.severity == types.DiagnosticSeverity.Error else "warning",
        "message": d.message,
        "line": d.range.start.line + 1,
        "column": d.range.start.character + 1,
        "end_line": d.range.end.line + 1,
        "end_column": d.range.end.character + 1,
    }


def expected(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item[k] for k in ("code", "severity", "message", "line", "column", "end_line", "end_column")}


async def test_open_document_gets_exactly_the_diagnostics_of_tqc_check(editor: Editor) -> None:
    uri = editor.open("broken.tqflow", BROKEN)
    got = await editor.diagnostics(uri, 1)
    want = tqc_check(editor, "broken.tqflow")
    assert len(want) >= 4  # the unknown task, argument, parameter and job
    assert [as_check(d) for d in got] == [expected(w) for w in want]
    assert {d.source for d in got} == {"tqc"}
    for d, w in zip(got, want, strict=True):  # help and notes ride along as related information
        related = [r.message for r in d.related_information or []]
        if w["help"]:
            assert f"help: {w['help']}" in related
        assert [f"note: {n}" for n in w["notes"]] == [m for m in related if m.startswith("note: ")]
    editor.close("broken.tqflow")


async def test_diagnostics_follow_the_text_as_it_is_typed(editor: Editor) -> None:
    uri = editor.open("typing.tqflow", HELLO)
    assert await editor.diagnostics(uri, 1) == []

    version = editor.change("typing.tqflow", HELLO.replace("t.shout(text=", "t.shout(txt="))
    got = await editor.diagnostics(uri, version)
    assert [as_check(d) for d in got] == [expected(w) for w in tqc_check(editor, "typing.tqflow")]
    assert sorted(d.code for d in got) == ["TQ0301"]  # unknown `txt` (did you mean `text`?), one error

    # Fix it with an incremental edit of the three characters, like an editor sends while typing.
    start = position(HELLO, "t.shout(text=", at=len("t.shout("))
    end = types.Position(line=start.line, character=start.character + 3)
    version = editor.edit("typing.tqflow", types.Range(start=start, end=end), "text")
    assert await editor.diagnostics(uri, version) == []
    editor.close("typing.tqflow")


async def test_syntax_errors_are_those_of_tqc_check(editor: Editor) -> None:
    text = HELLO.replace("job loud = t.shout", "job loud = = t.shout").replace(
        "output title", "output title =="
    )
    uri = editor.open("syntax.tqflow", text)
    got = await editor.diagnostics(uri, 1)
    want = tqc_check(editor, "syntax.tqflow")
    assert want and all(w["code"].startswith("TQ0") for w in want)
    assert [as_check(d) for d in got] == [expected(w) for w in want]
    editor.close("syntax.tqflow")


async def test_columns_count_utf16_code_units(editor: Editor) -> None:
    """The compiler counts characters; the protocol counts UTF-16 units (an emoji is two)."""
    text = HELLO.replace("t.greet(name=params.name)", 't.greet(name="\U0001f600\U0001f600", nam=1)')
    uri = editor.open("emoji.tqflow", text)
    got = await editor.diagnostics(uri, 1)
    unknown = next(d for d in got if d.code == "TQ0301")
    line = text.splitlines()[unknown.range.start.line]
    assert unknown.range.start.character == len(line[: line.index("nam=1")].encode("utf-16-le")) // 2
    assert unknown.range.end.character - unknown.range.start.character == 3
    editor.close("emoji.tqflow")


async def test_closing_a_document_clears_its_diagnostics(editor: Editor) -> None:
    uri = editor.open("closing.tqflow", BROKEN)
    assert await editor.diagnostics(uri, 1)
    since = editor.mark()
    editor.close("closing.tqflow")
    assert await editor.diagnostics(uri, since=since) == []


async def test_errors_in_an_imported_file_are_published_for_that_file(editor: Editor) -> None:
    editor.path("shared.tqflow").write_text(BROKEN, encoding="utf-8")
    text = 'import "shared.tqflow" as shared\n\n' + HELLO
    uri = editor.open("importer.tqflow", text)
    own = await editor.diagnostics(uri, 1)
    assert [d.code for d in own] == ["TQ0104"]
    imported = await editor.diagnostics(editor.uri("shared.tqflow"))
    want = [w for w in tqc_check(editor, "importer.tqflow") if w["file"].endswith("shared.tqflow")]
    assert [as_check(d) for d in imported] == [expected(w) for w in want]
    since = editor.mark()
    editor.close("importer.tqflow")
    assert await editor.diagnostics(editor.uri("shared.tqflow"), since=since) == []


async def test_a_changed_task_module_rechecks_the_open_documents(editor: Editor) -> None:
    text = HELLO.replace("t.combine(loud=loud.out, letters=3)", "t.fresh(loud=loud.out)")
    uri = editor.open("watch.tqflow", text)
    assert [d.code for d in await editor.diagnostics(uri, 1)] == ["TQ0201"]  # no task `fresh` yet
    tasks = editor.path("tasks.py")
    tasks.write_text(tasks.read_text() + "\n\n@task\ndef fresh(loud: str) -> str:\n    return loud\n")
    since = editor.mark()
    editor.client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[types.FileEvent(uri=editor.uri("tasks.py"), type=types.FileChangeType.Changed)]
        )
    )
    assert await editor.diagnostics(uri, 1, since=since) == []
    editor.close("watch.tqflow")
