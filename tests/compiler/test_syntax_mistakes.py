"""Known syntax mistakes and the message each must produce (snippet -> message, help)."""

from __future__ import annotations

import pytest

from tqflow.dsl.diagnostics import Diagnostics
from tqflow.dsl.parser import parse

from helpers import source

MISTAKES = [
    # (snippet, fragment of the message, fragment of the help or a label)
    ("flow f {\n  job a t.f()\n}\n", "expected `=` after the job name `a`", "job a = module.task"),
    ("flow f {\n  job = t.f()\n}\n", "a job needs a name", "job NAME ="),
    ("flow f {\n  job a -> t.f()\n}\n", "`->` only appears in a retry block rule", "after other_job"),
    ("flow f {\n  job a = t.f() {\n    after a -> b\n  }\n}\n", "`->` only appears", "after other_job"),
    ("flow f {\n  job a = t.f()\n", "unclosed `{`", "this `{` is never closed"),
    ("flow f {\n  job a = t.f(x=1\n}\n", "unclosed `(`", "this `(` is never closed"),
    ("flow f {\n  job a = t.f(x=[1, 2)\n}\n", "unclosed `[`", "this `[` is never closed"),
    ("name: nightly\n", "`key: value` is YAML", "flow name"),
    ("jobs:\n  - name: a\n", "`key: value` is YAML", "flow jobs"),
    ('flow f {\n  queue: "etl"\n}\n', "`queue:` is YAML", "write `queue value`"),
    ("flow f {\n  job a = t.f() {\n    priority: high\n  }\n}\n", "`priority:` is YAML", "priority value"),
    ("flow f {\n  job a = t.f(x: 1)\n}\n", "arguments are passed as `name=value`", "replace `:` with `=`"),
    ("flow f {\n  job a = t.f(x='a')\n}\n", "strings are written in double quotes", 'write "text"'),
    ("flow f {\n  job a = t.f() {\n    when params.x = 1\n  }\n}\n", "`=` does not compare", "`==`"),
    ("flow f {\n  job a = t.f() {\n    when a && b\n  }\n}\n", "`&&` is not an operator", "`and`"),
    ("flow f {\n  job a = t.f() {\n    when a || b\n  }\n}\n", "`||` is not an operator", "`or`"),
    ("flow f {\n  job a = t.f(x=${x})\n}\n", "`${…}` templates do not exist", 'f"'),
    ("flow f {\n  jbo a = t.f()\n}\n", "unknown statement `jbo` in a flow", "did you mean `job`?"),
    ("flow f {\n  job a = t.f() {\n    priorty high\n  }\n}\n", "unknown statement `priorty`", "`priority`"),
    ("flwo f {\n}\n", "unknown statement `flwo` at the top level", "did you mean `flow`?"),
    ("use m as\n", "unexpected end of line", ""),
]


@pytest.mark.parametrize(("snippet", "message", "help_text"), MISTAKES)
def test_known_mistake_gets_its_message(snippet: str, message: str, help_text: str) -> None:
    diagnostics = Diagnostics()
    assert parse(source(snippet), diagnostics) is None
    first = diagnostics.items[0]
    assert first.code == "TQ0001"
    assert message in first.message
    extra = " ".join([first.help or "", first.label, *(lb.message for lb in first.labels)])
    assert help_text in extra
