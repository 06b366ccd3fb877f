"""Completion of task names, argument names, job names, `.out` fields (and parameters, statuses, keywords),
while the line being typed does not parse yet."""

from __future__ import annotations

import itertools

import pytest
from lsprotocol import types

from conftest import HELLO, Editor

pytestmark = pytest.mark.asyncio(loop_scope="module")
_names = itertools.count()


async def complete(editor: Editor, typed: str, before: str = "  output title") -> list[types.CompletionItem]:
    """Type `typed` on a new line before the line starting with `before`; complete at its end."""
    text = HELLO.replace(before, f"{typed}\n{before}", 1)
    name = f"complete{next(_names)}.tqflow"
    editor.open(name, text)
    line = text[: text.index(f"{typed}\n{before}")].count("\n")
    result = await editor.client.text_document_completion_async(
        types.CompletionParams(
            text_document=editor.doc(name),
            position=types.Position(line=line, character=len(typed)),
        )
    )
    editor.close(name)
    assert isinstance(result, types.CompletionList)
    return list(result.items)


def labels(items: list[types.CompletionItem]) -> list[str]:
    return [i.label for i in items]


async def test_task_names_after_a_module_alias(editor: Editor) -> None:
    items = await complete(editor, "  job next = t.")
    assert labels(items) == ["combine", "greet", "report", "shout"]  # not `not_a_task`
    greet = next(i for i in items if i.label == "greet")
    assert greet.detail == "def greet(name: str, punctuation: str) -> str"
    assert isinstance(greet.documentation, types.MarkupContent)
    assert greet.documentation.value.startswith("Say hello to someone.")
    assert labels(await complete(editor, "  job next = ")) == ["t"]


async def test_argument_names_of_the_task_being_called(editor: Editor) -> None:
    items = await complete(editor, "  job next = t.greet(")
    assert labels(items) == ["name", "punctuation"]
    assert [i.insert_text for i in items] == ["name=", "punctuation="]
    assert items[0].detail == "name: str (required)"
    assert labels(await complete(editor, "  job next = t.greet(name=params.name, ")) == ["punctuation"]
    assert labels(await complete(editor, "  job next = t.report(text=f(1, 2), r")) == ["rows"]


async def test_job_names_where_a_value_goes(editor: Editor) -> None:
    found = labels(await complete(editor, "  job next = t.shout(text="))
    assert found[:4] == ["greeting", "loud", "summary", "merged"]
    assert {"params", "run"} <= set(found)
    after = labels(await complete(editor, "    after ", before="  }\n  job summary"))
    assert {"greeting", "loud", "any_failed", "all_done"} <= set(after)


async def test_out_fields_of_a_task_result(editor: Editor) -> None:
    assert labels(await complete(editor, "  output o = summary.out.")) == ["title", "rows", "author"]
    assert labels(await complete(editor, "  output o = summary.out.author.")) == ["name", "email"]
    assert labels(await complete(editor, "  output o = merged.out.")) == ["message", "letters"]
    assert labels(await complete(editor, "  output o = summary.")) == ["out"]
    statuses = labels(await complete(editor, "    after loud and greeting.", before="  }\n  job summary"))
    assert statuses == ["out", "succeeded", "failed", "done", "skipped"]


async def test_parameters_run_fields_and_keywords(editor: Editor) -> None:
    assert labels(await complete(editor, "  output o = params.")) == ["name"]
    assert labels(await complete(editor, "  output o = run.")) == ["id", "date", "time"]
    flow_keywords = labels(await complete(editor, "  "))
    assert {"job", "output", "schedule", "defaults"} <= set(flow_keywords)
    settings = labels(await complete(editor, "    ", before="  }\n  job summary"))
    assert {"after", "retry", "timeout", "priority"} <= set(settings)


async def test_after_a_job_without_a_block_come_flow_keywords(editor: Editor) -> None:
    found = labels(await complete(editor, "  ", before="  job merged"))
    assert "job" in found and "after" not in found


async def signature_help(editor: Editor, typed: str) -> types.SignatureHelp | None:
    text = HELLO.replace("  output title", f"{typed}\n  output title", 1)
    name = f"signature{next(_names)}.tqflow"
    editor.open(name, text)
    line = text[: text.index(f"{typed}\n  output title")].count("\n")
    result = await editor.client.text_document_signature_help_async(
        types.SignatureHelpParams(
            text_document=editor.doc(name), position=types.Position(line=line, character=len(typed))
        )
    )
    editor.close(name)
    return result


async def test_signature_help_while_typing_arguments(editor: Editor) -> None:
    result = await signature_help(editor, "  job next = t.greet(")
    assert result is not None
    (signature,) = result.signatures
    assert signature.label == "greet(name: str, punctuation: str) -> str"
    assert [p.label for p in signature.parameters or []] == ["name: str", "punctuation: str"]
    assert isinstance(signature.documentation, types.MarkupContent)
    assert signature.documentation.value.startswith("Say hello to someone.")
    assert result.active_parameter == 0
    result = await signature_help(editor, "  job next = t.greet(name=params.name, punctuation=")
    assert result is not None and result.active_parameter == 1
    assert await signature_help(editor, "  output o = greeting.out") is None  # not in a call


async def test_limiter_names_after_limit_and_the_new_keywords(editor: Editor) -> None:
    text = HELLO.replace("flow ", "limiter api = rate(10/s)\nlimiter db = concurrency(3)\n\nflow ", 1)
    text = text.replace("    after greeting", "    limit \n    after greeting", 1)
    editor.open("limits_completion.tqflow", text)
    line = text[: text.index("    limit \n")].count("\n")
    result = await editor.client.text_document_completion_async(
        types.CompletionParams(
            text_document=editor.doc("limits_completion.tqflow"),
            position=types.Position(line=line, character=len("    limit ")),
        )
    )
    editor.close("limits_completion.tqflow")
    assert isinstance(result, types.CompletionList)
    assert labels(list(result.items)) == ["api", "db"]
    settings = await complete(editor, "    ", before="  }\n  job summary")
    assert {"limit", "fair"} <= set(labels(settings))
    assert "limiter" in labels(await complete(editor, "", before="flow hello"))
