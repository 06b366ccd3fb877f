"""The examples as an editor opens them: the diagnostics are `tqc check`'s, and every job's task has a hover
with its Python signature and a definition in its module."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from lsprotocol import types

from cli_runner import tqc
from conftest import Editor, position

pytestmark = pytest.mark.asyncio(loop_scope="module")

EXAMPLES = sorted((Path(__file__).parent.parent.parent / "examples").glob("*/*.tqflow"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.parent.name for e in EXAMPLES])
async def test_example(editor: Editor, example: Path) -> None:
    folder = editor.folder / example.parent.name
    shutil.copytree(example.parent, folder, dirs_exist_ok=True)
    name = f"{example.parent.name}/{example.name}"
    text = example.read_text(encoding="utf-8")
    uri = editor.open(name, text)
    got = await editor.diagnostics(uri, 1)
    done = tqc("check", "--format", "json", str(folder / example.name))
    want = json.loads(done.stdout)
    assert [(d.code, d.message, d.range.start.line + 1) for d in got] == [
        (w["code"], w["message"], w["line"]) for w in want
    ]
    calls = [
        line.split("=", 1)[1].split("(")[0].strip()
        for line in text.splitlines()
        if line.strip().startswith("job ") and "= signal " not in line and "= flow " not in line
    ]  # a signal job calls no task; a sub-flow job runs a flow (below)
    assert calls
    for func in calls:
        at = position(text, f"{func}(", at=len(func) - 1)
        hover = await editor.client.text_document_hover_async(
            types.HoverParams(text_document=editor.doc(name), position=at)
        )
        assert hover is not None and isinstance(hover.contents, types.MarkupContent), func
        assert "def " + func.rpartition(".")[2] + "(" in hover.contents.value
        where = await editor.client.text_document_definition_async(
            types.DefinitionParams(text_document=editor.doc(name), position=at)
        )
        assert isinstance(where, types.Location) and where.uri.endswith(".py"), func
    flows = [line.split("= flow ", 1)[1].split("(")[0] for line in text.splitlines() if "= flow " in line]
    for flow in flows:  # a sub-flow's hover shows its params and outputs; its definition is its declaration
        at = position(text, f"{flow}(", at=len(flow) - 1)
        hover = await editor.client.text_document_hover_async(
            types.HoverParams(text_document=editor.doc(name), position=at)
        )
        assert hover is not None and isinstance(hover.contents, types.MarkupContent), flow
        assert f"flow {flow}(" in hover.contents.value and "outputs (`.out` fields)" in hover.contents.value
        where = await editor.client.text_document_definition_async(
            types.DefinitionParams(text_document=editor.doc(name), position=at)
        )
        assert isinstance(where, types.Location) and where.uri.endswith(".tqflow"), flow
    editor.close(name)
