"""Better messages for the syntax mistakes people actually make (YAML habits, `:` for `=`, `->`,
missing `=` after a job name, unclosed braces, single quotes, `&&`).

`hint` looks at the text around a syntax error and returns a clearer message, a help line and
secondary labels, or None when the generic "unexpected X, expected …" is the best there is.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import cache

from tqflow.dsl.source import Source, Span

SCHEDULE_OPTIONS = (
    "catchup",
    "overlap",
    "on_dst_gap",
    "on_dst_repeat",
)  # names, not keywords: the compiler's


@cache
def keywords(rule: str) -> tuple[str, ...]:
    """The keywords that can start `rule` in the grammar (so a construct added there is known here)."""
    from tqflow.dsl.parser import first_keywords  # the parser imports this module

    return first_keywords(rule)


def top_level() -> tuple[str, ...]:
    return keywords("_decl")


def flow_items() -> tuple[str, ...]:
    return keywords("flow_item")


def settings() -> tuple[str, ...]:
    return keywords("setting")


@cache
def blocks() -> dict[str, tuple[tuple[str, ...], str]]:
    """The first word of the line that opened a block -> what may start a line in it."""
    return {
        "flow": (flow_items(), "in a flow"),
        "defaults": (settings(), "in `defaults`"),
        "schedule": (SCHEDULE_OPTIONS, "in a schedule block"),
        "retry": (keywords("retry_rule"), "in a retry block"),
    }


@dataclass(frozen=True)
class Hint:
    message: str
    help: str | None = None
    labels: tuple[tuple[Span, str], ...] = ()


@dataclass(frozen=True)
class Where:
    """What surrounds the error: the enclosing brackets (innermost last) and the line's text."""

    brackets: list[tuple[str, int]]  # (bracket, offset) still open at the error
    line_before: str  # the error's line, up to the error
    line_after: str  # the error's line, from the error on
    word: str  # the offending token's text


def hint(source: Source, text: str, offset: int, found: str, at_end: bool) -> Hint | None:
    end = text.find("\n", offset)
    where = Where(
        _open_brackets(text, offset),
        _line_before(text, offset),
        text[offset : end if end >= 0 else None],
        found,
    )
    for rule in (
        _unclosed,
        _characters,
        _arrow,
        _yaml,
        _colon_argument,
        _assign_compare,
        _job_equals,
        _keyword,
    ):
        result = rule(source, where, at_end)
        if result is not None:
            return result
    return None


def _unclosed(source: Source, where: Where, at_end: bool) -> Hint | None:
    if not where.brackets:
        return None
    bracket, position = where.brackets[-1]
    closing = {"{": "}", "(": ")", "[": "]"}[bracket]
    if at_end or (where.word in ("}", ")", "]") and where.word != closing):
        return Hint(
            f"unclosed `{bracket}`",
            help=f"add the matching `{closing}`",
            labels=((source.span_at(position, 1), f"this `{bracket}` is never closed"),),
        )
    return None


def _characters(source: Source, where: Where, at_end: bool) -> Hint | None:
    replacements = {
        "'": ("strings are written in double quotes", 'write "text"'),
        "&": ("`&&` is not an operator", "write `and`"),
        "|": ("`||` is not an operator", "write `or`"),
        "!": ("`!` is not an operator", "write `not x`, or `!=` to compare"),
        "$": ("`${…}` templates do not exist in .tqflow", 'write the expression itself, or f"…{expr}…"'),
    }
    if where.word[:1] in replacements:
        message, help_text = replacements[where.word[:1]]
        return Hint(message, help=help_text)
    return None


def _arrow(source: Source, where: Where, at_end: bool) -> Hint | None:
    if where.word != "->" and not (where.word == ">" and where.line_before.endswith("-")):
        return None
    return Hint(
        "`->` only appears in a retry block rule, like `retry { on TimeoutError -> fixed(1s) }`",
        help="a job waits for another by reading its `.out`, or with `after other_job` in its block",
    )


def _yaml(source: Source, where: Where, at_end: bool) -> Hint | None:
    match = re.fullmatch(r"\s*(-\s+)?([A-Za-z_][\w-]*)\s*", where.line_before)
    key_first = re.match(r"([A-Za-z_][\w-]*)\s*:", where.line_after)  # the key itself is unexpected
    if key_first and re.fullmatch(r"\s*(-\s+)?", where.line_before):
        key = key_first.group(1)
    elif where.word == ":" and match is not None:
        key = match.group(2)
    else:
        return None
    depth = [b for b, _ in where.brackets]
    if not depth:
        return Hint(
            "`key: value` is YAML; a .tqflow file holds `use`, `import`, `retry`, `limiter` and `flow` "
            "declarations",
            help=f"for example `flow {key} {{ … }}`"
            if key not in top_level()
            else f"write `{key} …` without `:`",
        )
    if depth[-1] == "{" and "(" not in depth and key != "params":
        known = (*flow_items(), *settings())
        return Hint(
            f"`{key}:` is YAML; .tqflow writes settings without a colon",
            help=f"write `{key} value`" if key in known else _did_you_mean(key, known),
        )
    return None


def _colon_argument(source: Source, where: Where, at_end: bool) -> Hint | None:
    if where.word == ":" and where.brackets and where.brackets[-1][0] == "(":
        return Hint("arguments are passed as `name=value`, not `name: value`", help="replace `:` with `=`")
    return None


def _assign_compare(source: Source, where: Where, at_end: bool) -> Hint | None:
    if where.word == "=" and re.match(r"\s*(when|after)\b", where.line_before):
        return Hint("`=` does not compare", help="write `==` to compare two values")
    return None


def _job_equals(source: Source, where: Where, at_end: bool) -> Hint | None:
    match = re.fullmatch(r"\s*job\s+([A-Za-z_]\w*)\s*", where.line_before)
    if match and where.word != "=":
        name = match.group(1)
        return Hint(
            f"expected `=` after the job name `{name}`",
            help=f"a job is declared `job {name} = module.task(arg=value)`",
        )
    if re.fullmatch(r"\s*job\s*", where.line_before) and where.word == "=":
        return Hint("a job needs a name", help="write `job NAME = module.task(…)`")
    return None


def _keyword(source: Source, where: Where, at_end: bool) -> Hint | None:
    if not re.fullmatch(r"\s*", where.line_before) or not re.fullmatch(r"[A-Za-z_]\w*", where.word):
        return None
    choices: tuple[str, ...]
    if not where.brackets:
        choices, where_text = top_level(), "at the top level"
    else:
        opener = _line_before(source.text, where.brackets[-1][1]).strip()
        kind = opener.split(" ", 1)[0] if opener else ""
        choices, where_text = blocks().get(kind, (settings(), "in a job block"))
    return Hint(
        f"unknown statement `{where.word}` {where_text}",
        help=_did_you_mean(where.word, choices) or f"expected one of: {', '.join(choices)}",
    )


def _did_you_mean(word: str, choices: tuple[str, ...]) -> str | None:
    matches = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean `{matches[0]}`?" if matches else None


def _line_before(text: str, offset: int) -> str:
    return text[text.rfind("\n", 0, offset) + 1 : offset]


def _open_brackets(text: str, offset: int) -> list[tuple[str, int]]:
    """Brackets opened before `offset` and not yet closed, skipping strings and comments."""
    stack: list[tuple[str, int]] = []
    i = 0
    while i < min(offset, len(text)):
        ch = text[i]
        if ch == "#":
            i = text.find("\n", i)
            if i < 0:
                break
        elif ch == '"':
            match = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"?').match(text, i)
            i = match.end() - 1 if match else i
        elif ch in "{([":
            stack.append((ch, i))
        elif ch in "})]" and stack:
            stack.pop()
        i += 1
    return stack
