"""The server as Neovim 0.11 drives it: Neovim asks for UTF-8 positions (bytes within a line), so a line
with non-ASCII text puts every column elsewhere than in UTF-16."""

from __future__ import annotations

import pytest
from lsprotocol import types

from conftest import HELLO, Editor

pytestmark = pytest.mark.asyncio(loop_scope="module")

ACCENTED = HELLO.replace(
    "  job loud = t.shout(text=greeting.out) {",
    '  job loud = t.shout(text=greeting.out + "é\U0001f600", txt=1) {',
)


def utf8_column(line: str, needle: str) -> int:
    return len(line[: line.index(needle)].encode("utf-8"))


async def test_diagnostics_count_utf8_bytes(neovim: Editor) -> None:
    init = neovim.client.capabilities
    assert init is not None and init.general is not None
    assert (init.general.position_encodings or [])[0] == types.PositionEncodingKind.Utf8
    uri = neovim.open("nvim.tqflow", ACCENTED)
    (unknown,) = [d for d in await neovim.diagnostics(uri, 1) if d.code == "TQ0301"]
    line = ACCENTED.splitlines()[unknown.range.start.line]
    assert unknown.range.start.character == utf8_column(line, "txt=1")
    assert unknown.range.end.character == utf8_column(line, "txt=1") + 3
    utf16 = len(line[: line.index("txt=1")].encode("utf-16-le")) // 2
    assert utf16 != unknown.range.start.character  # so the server did switch to UTF-8


async def test_hover_and_rename_on_a_line_with_non_ascii_text(neovim: Editor) -> None:
    neovim.open("nvim2.tqflow", ACCENTED)
    number = next(i for i, line in enumerate(ACCENTED.splitlines()) if "txt=1" in line)
    line = ACCENTED.splitlines()[number]
    where = types.Position(line=number, character=utf8_column(line, "greeting.out") + 2)
    hover = await neovim.client.text_document_hover_async(
        types.HoverParams(text_document=neovim.doc("nvim2.tqflow"), position=where)
    )
    assert hover is not None and hover.range is not None
    assert hover.range.start.character == utf8_column(line, "greeting.out")
    result = await neovim.client.text_document_rename_async(
        types.RenameParams(text_document=neovim.doc("nvim2.tqflow"), position=where, new_name="hi")
    )
    assert result is not None and result.changes is not None
    on_line = [e for e in result.changes[neovim.uri("nvim2.tqflow")] if e.range.start.line == number]
    assert [e.range.start.character for e in on_line] == [utf8_column(line, "greeting.out")]


async def test_completion_after_non_ascii_text(neovim: Editor) -> None:
    text = HELLO.replace("  output title", '  output o = "é\U0001f600" + summary.out.\n  output title')
    neovim.open("nvim3.tqflow", text)
    number = next(i for i, line in enumerate(text.splitlines()) if "summary.out." in line and "é" in line)
    line = text.splitlines()[number]
    result = await neovim.client.text_document_completion_async(
        types.CompletionParams(
            text_document=neovim.doc("nvim3.tqflow"),
            position=types.Position(line=number, character=len(line.encode("utf-8"))),
        )
    )
    assert isinstance(result, types.CompletionList)
    assert [i.label for i in result.items] == ["title", "rows", "author"]
