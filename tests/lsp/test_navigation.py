"""Hover shows the task's Python signature and docstring; go to definition lands in the Python function
(and on a job's or parameter's declaration in the flow)."""

from __future__ import annotations

import pytest
from lsprotocol import types

from conftest import HELLO, TASKS, Editor, position

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def hover(editor: Editor, name: str, text: str, needle: str, at: int = 0, nth: int = 0) -> str:
    result = await editor.client.text_document_hover_async(
        types.HoverParams(text_document=editor.doc(name), position=position(text, needle, at, nth))
    )
    assert result is not None, f"no hover on {needle!r}"
    assert isinstance(result.contents, types.MarkupContent)
    return result.contents.value


async def definition(
    editor: Editor, name: str, text: str, needle: str, at: int = 0, nth: int = 0
) -> types.Location:
    result = await editor.client.text_document_definition_async(
        types.DefinitionParams(text_document=editor.doc(name), position=position(text, needle, at, nth))
    )
    assert isinstance(result, types.Location), result
    return result


async def test_hover_on_a_task_shows_its_python_signature_and_docstring(editor: Editor) -> None:
    editor.open("hover.tqflow", HELLO)
    text = await hover(editor, "hover.tqflow", HELLO, "t.greet", at=3)
    assert "```python\n@task\ndef greet(name: str, punctuation: str='!') -> str\n```" in text
    assert "Say hello to someone.\n\nThe greeting ends with `punctuation`." in text
    assert "task `tasks.greet` in tasks.py:" in text

    text = await hover(editor, "hover.tqflow", HELLO, "t.report", at=2)
    assert "async def report(text: str, *, rows: int=0) -> Report | None" in text
    assert "Build a report about the text." in text


async def test_hover_on_jobs_arguments_and_parameters(editor: Editor) -> None:
    editor.open("hover2.tqflow", HELLO)
    text = await hover(editor, "hover2.tqflow", HELLO, "greeting.out", at=2)
    assert "job greeting = t.greet(name=params.name)" in text
    assert "`greeting.out` is `str`" in text

    text = await hover(editor, "hover2.tqflow", HELLO, "text=greeting")
    assert "```python\ntext: str\n```" in text and "required parameter of task `tasks.shout`" in text

    text = await hover(editor, "hover2.tqflow", HELLO, "params.name", at=8)
    assert 'name: Str = "world"' in text and "parameter of flow `hello`" in text

    result = await editor.client.text_document_hover_async(
        types.HoverParams(text_document=editor.doc("hover2.tqflow"), position=position(HELLO, "# The"))
    )
    assert result is None  # a comment means nothing


async def test_hover_works_while_a_line_is_half_typed(editor: Editor) -> None:
    text = HELLO.replace("  output title", "  job half = t.\n  output title")
    editor.open("half.tqflow", text)
    shown = await hover(editor, "half.tqflow", text, "t.shout", at=3)
    assert "def shout(text: str) -> str" in shown


async def test_definition_of_a_task_is_its_python_function(editor: Editor) -> None:
    editor.open("def.tqflow", HELLO)
    where = await definition(editor, "def.tqflow", HELLO, "t.greet", at=4)
    assert where.uri == editor.uri("tasks.py")
    assert where.range.start == position(TASKS, "def greet", at=4)
    assert where.range.end.character - where.range.start.character == len("greet")


async def test_definition_of_an_argument_is_the_python_parameter(editor: Editor) -> None:
    editor.open("def2.tqflow", HELLO)
    where = await definition(editor, "def2.tqflow", HELLO, "name=params")
    assert where.uri == editor.uri("tasks.py")
    assert where.range.start == position(TASKS, "name: str, punctuation")


async def test_definition_of_a_job_reference_and_of_a_module(editor: Editor) -> None:
    editor.open("def3.tqflow", HELLO)
    where = await definition(editor, "def3.tqflow", HELLO, "after greeting", at=7)
    assert where.uri == editor.uri("def3.tqflow")
    assert where.range.start == position(HELLO, "job greeting", at=4)
    where = await definition(editor, "def3.tqflow", HELLO, "params.name", at=8)
    assert where.range.start == position(HELLO, "name: Str")
    where = await definition(editor, "def3.tqflow", HELLO, "use tasks as t", at=13)
    assert where.uri == editor.uri("tasks.py")


async def test_references_of_a_job(editor: Editor) -> None:
    editor.open("refs.tqflow", HELLO)
    result = await editor.client.text_document_references_async(
        types.ReferenceParams(
            text_document=editor.doc("refs.tqflow"),
            position=position(HELLO, "job greeting", at=5),
            context=types.ReferenceContext(include_declaration=False),
        )
    )
    assert result is not None
    assert [r.range.start for r in result] == [
        position(HELLO, "greeting.out"),
        position(HELLO, "after greeting", at=6),
        position(HELLO, "greeting.out", nth=1),
    ]


async def test_outline_of_flows_jobs_parameters_and_outputs(editor: Editor) -> None:
    editor.open("outline.tqflow", HELLO)
    result = await editor.client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=editor.doc("outline.tqflow"))
    )
    assert result is not None
    (flow,) = result
    assert isinstance(flow, types.DocumentSymbol) and flow.name == "hello"
    assert [(c.name, c.detail) for c in flow.children or []] == [
        ("name", "Str"),
        ("greeting", "t.greet"),
        ("loud", "t.shout"),
        ("summary", "t.report"),
        ("merged", "t.combine"),
        ("title", "output"),
        ("greeting", "output"),
    ]
    title = (flow.children or [])[5]
    assert title.selection_range.start == position(HELLO, "output title", at=7)


RETRIES = """\
use tasks as t
use tasks.{Flaky}

retry quick = fixed(1s), attempts=3

flow f {
  job a = t.shout(text="x") {
    retry {
      on Flaky -> quick
      else -> fixed(5s), attempts=2
    }
  }
  job b = t.shout(text=a.out) {
    retry quick
  }
}
"""


async def test_definition_and_hover_of_retry_policies_and_exceptions(editor: Editor) -> None:
    editor.open("retries.tqflow", RETRIES)
    where = await definition(editor, "retries.tqflow", RETRIES, "on Flaky", at=4)
    assert where.uri == editor.uri("tasks.py")
    assert where.range.start == position(TASKS, "class Flaky", at=6)
    assert "The service failed this time" in await hover(editor, "retries.tqflow", RETRIES, "Flaky ->")
    for nth in (1, 2):  # `-> quick` in the rule, `retry quick` in job b
        where = await definition(editor, "retries.tqflow", RETRIES, "quick", nth=nth)
        assert where.range.start == position(RETRIES, "retry quick", at=6)
    assert "retry quick = fixed(1s), attempts=3" in await hover(
        editor, "retries.tqflow", RETRIES, "quick", nth=2
    )


SHARED_LIMITS = """\
# shared by the flows that import this file
limiter db = concurrency(3)
"""

LIMITS = """\
use tasks as t
import "shared_limits.tqflow" as shared

limiter api = rate(10/s, burst=20)  # the provider's limit
limiter slow = concurrency(2)

flow f {
  params { who: Str }
  job a = t.shout(text=params.who)
  job b = t.shout(text="x") {
    limit api by a.out
    limit slow
    limit shared.db
    fair by a.out weight 2
  }
}
"""


async def test_hover_definition_and_references_of_limiters_and_their_keys(editor: Editor) -> None:
    editor.open("shared_limits.tqflow", SHARED_LIMITS)
    editor.open("limits.tqflow", LIMITS)
    where = await definition(editor, "limits.tqflow", LIMITS, "limit api", at=6)
    assert where.uri == editor.uri("limits.tqflow")
    assert where.range.start == position(LIMITS, "limiter api", at=8)
    text = await hover(editor, "limits.tqflow", LIMITS, "limit slow", at=6)
    assert "limiter slow = concurrency(2)" in text and "at most this many" in text
    text = await hover(editor, "limits.tqflow", LIMITS, "limiter api", at=8)
    assert "limiter api = rate(10/s, burst=20)\n" in text and "the provider's limit" not in text
    where = await definition(editor, "limits.tqflow", LIMITS, "shared.db", at=8)  # an imported limiter
    assert where.uri == editor.uri("shared_limits.tqflow")
    assert where.range.start == position(SHARED_LIMITS, "limiter db", at=8)
    text = await hover(editor, "limits.tqflow", LIMITS, "shared.db", at=8)
    assert "limiter db = concurrency(3)" in text and "shared_limits.tqflow:2" in text
    # the job read by a key is a reference of that job (a rename changes it too)
    found = await editor.client.text_document_references_async(
        types.ReferenceParams(
            text_document=editor.doc("limits.tqflow"),
            position=position(LIMITS, "job a", at=4),
            context=types.ReferenceContext(include_declaration=False),
        )
    )
    assert found is not None
    starts = sorted((r.range.start.line, r.range.start.character) for r in found)
    expected = [position(LIMITS, "a.out", nth=n) for n in (0, 1)]
    assert starts == [(p.line, p.character) for p in expected]
