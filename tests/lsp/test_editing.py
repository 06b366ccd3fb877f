"""Formatting is `tqc fmt`; rename of a job changes its declaration and every reference in its flow."""

from __future__ import annotations

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from cli_runner import tqc
from conftest import HELLO, Editor, position

pytestmark = pytest.mark.asyncio(loop_scope="module")

OPTIONS = types.FormattingOptions(tab_size=2, insert_spaces=True)


def apply(text: str, edits: list[types.TextEdit]) -> str:
    """Apply edits the way an editor does (the texts here are ASCII, so characters are columns)."""
    starts = [0]
    starts += [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def offset(p: types.Position) -> int:
        return starts[p.line] + p.character if p.line < len(starts) else len(text)

    for edit in sorted(edits, key=lambda e: offset(e.range.start), reverse=True):
        text = text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end) :]
    return text


async def format_document(editor: Editor, name: str) -> list[types.TextEdit] | None:
    return await editor.client.text_document_formatting_async(
        types.DocumentFormattingParams(text_document=editor.doc(name), options=OPTIONS)
    )


async def test_formatting_gives_what_tqc_fmt_writes(
    editor: Editor, tmp_path_factory: pytest.TempPathFactory
) -> None:
    messy = (
        HELLO.replace(
            "  job greeting = t.greet(name=params.name)", "job   greeting=t.greet( name = params.name )"
        )
        .replace("    after greeting", "      after greeting  # wait for it")
        .replace("\n\n  output", "\n\n\n\n  output")
    )
    editor.open("messy.tqflow", messy)
    edits = await format_document(editor, "messy.tqflow")
    assert edits
    copy = tmp_path_factory.mktemp("fmt") / "messy.tqflow"
    copy.write_text(messy, encoding="utf-8")
    done = tqc("fmt", str(copy))
    assert done.returncode == 0, done.stderr
    formatted = apply(messy, edits)
    assert formatted == copy.read_text(encoding="utf-8")
    assert "# wait for it" in formatted

    editor.change("messy.tqflow", formatted)
    again = await format_document(editor, "messy.tqflow")
    assert again is not None and len(again) == 0  # already formatted: nothing to change


async def test_formatting_a_document_that_does_not_parse_changes_nothing(editor: Editor) -> None:
    editor.open("unparsable.tqflow", HELLO.replace("job loud =", "job loud == "))
    assert await format_document(editor, "unparsable.tqflow") is None


async def test_rename_a_job_everywhere_in_its_flow(editor: Editor) -> None:
    uri = editor.open("rename.tqflow", HELLO)
    where = position(HELLO, "after greeting", at=8)
    prepared = await editor.client.text_document_prepare_rename_async(
        types.PrepareRenameParams(text_document=editor.doc("rename.tqflow"), position=where)
    )
    assert prepared == types.Range(
        start=position(HELLO, "after greeting", at=6), end=position(HELLO, "after greeting", at=14)
    )

    result = await editor.client.text_document_rename_async(
        types.RenameParams(text_document=editor.doc("rename.tqflow"), position=where, new_name="welcome")
    )
    assert result is not None and result.changes is not None
    renamed = apply(HELLO, list(result.changes[uri]))
    assert len(result.changes[uri]) == 4  # the declaration, `greeting.out` twice, `after greeting`
    assert renamed == (
        HELLO.replace("job greeting", "job welcome")
        .replace("text=greeting.out", "text=welcome.out")
        .replace("after greeting", "after welcome")
        .replace("output greeting = greeting.out", "output greeting = welcome.out")  # outputs keep their name
    )
    version = editor.change("rename.tqflow", renamed)
    assert await editor.diagnostics(uri, version) == []


async def test_rename_refuses_what_would_break_the_flow(editor: Editor) -> None:
    editor.open("rename2.tqflow", HELLO)
    where = position(HELLO, "job loud", at=5)
    for bad, why in (("greeting", "already has a job"), ("2fast", "is not a name"), ("params", "reserved")):
        with pytest.raises(JsonRpcException, match=why):
            await editor.client.text_document_rename_async(
                types.RenameParams(text_document=editor.doc("rename2.tqflow"), position=where, new_name=bad)
            )
    on_task = await editor.client.text_document_prepare_rename_async(
        types.PrepareRenameParams(
            text_document=editor.doc("rename2.tqflow"), position=position(HELLO, "t.shout", at=3)
        )
    )
    assert on_task is None  # only jobs are renamed


async def test_quick_fixes_apply_the_did_you_mean_of_a_diagnostic(editor: Editor) -> None:
    typos = (
        HELLO.replace("t.greet(name=", "t.gret(name=")
        .replace("t.shout(text=", "t.shout(txt=")
        .replace("after greeting", "after greting")
    )
    uri = editor.open("typos.tqflow", typos)
    diagnostics = await editor.diagnostics(uri, 1)
    result = await editor.client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=editor.doc("typos.tqflow"),
            range=types.Range(
                start=types.Position(line=0, character=0), end=types.Position(line=30, character=0)
            ),
            context=types.CodeActionContext(diagnostics=diagnostics),
        )
    )
    assert result is not None
    titles = sorted(a.title for a in result if isinstance(a, types.CodeAction))
    assert titles == ["Change `gret` to `greet`", "Change `greting` to `greeting`", "Change `txt` to `text`"]
    edits = [
        e
        for a in result
        if isinstance(a, types.CodeAction) and a.edit and a.edit.changes
        for e in a.edit.changes[uri]
    ]
    fixed = apply(typos, edits)
    assert fixed == HELLO
    version = editor.change("typos.tqflow", fixed)
    assert await editor.diagnostics(uri, version) == []
