"""The fast path's lexer: `.tqflow` text → the token list the Lark parser would see (see `fast_parser`).

It reproduces Lark's standard lexer for `tqflow.lark` (the same terminal regexes, tried in Lark's order:
priority, then width) and the `_BracketNewlines` post-lexer (newlines inside `( )`, `[ ]` and dict braces
dropped). Anything it does not know -- a character no terminal matches, a keyword the grammar gained
after this file was written -- raises `Fallback`, and the caller parses with Lark instead.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from tqflow.errors import LanguageError


class Fallback(LanguageError):
    """The fast path cannot vouch for this input: parse it with Lark (never reaches a user)."""


# One alternation of the grammar's terminals. Where two can match at the same place, they are in the
# order Lark's standard lexer tries them (first match wins: DATETIME.5, DATE.4, DURATION.3, PERCENT.3,
# FLOAT.2 before INT; FSTRING.2 before NAME; `_NL` before COMMENT; `->` before `-`); the rest is
# ordered for speed, names first. No groups: `findall` hands back the matched texts, and a text's kind
# follows from its first characters (`_kind`).
_PATTERNS = (
    r'f"[^"\\\n]*(?:\\.[^"\\\n]*)*"',  # FSTRING
    r"[A-Za-z_][A-Za-z0-9_]*",  # NAME (or a keyword)
    r"->|\.\{|==|!=|<=|>=|[<>+\-(){}\[\],=:.;?/]",  # operators
    r"[\t \f]+|\\[\t \f]*\r?\n",  # ignored: blanks, and a backslash that continues the line
    r"(?:(?:#[^\n]*)?\r?\n[\t ]*)+",  # _NL: newlines, with the comments and blank lines between them
    r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"',  # STRING
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:[0-9]{2})?"
    r"(?![A-Za-z0-9_])",  # DATETIME
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?![A-Za-z0-9_])",  # DATE
    r"[0-9]+(?:ms|s|m|h|d)(?![A-Za-z0-9_])",  # DURATION
    r"[0-9]+(?:\.[0-9]+)?%",  # PERCENT
    r"[0-9]+\.[0-9]+",  # FLOAT
    r"[0-9]+",  # INT
    r"#[^\n]*",  # COMMENT (ignored)
)
_TOKEN = re.compile("|".join(_PATTERNS))

# Operators by text, named as Lark names them (the post-lexer and the parser test these names).
OPERATORS = {
    "->": "ARROW",
    ".{": "DOT_BRACE",
    "==": "COMP_OP",
    "!=": "COMP_OP",
    "<=": "COMP_OP",
    ">=": "COMP_OP",
    "<": "COMP_OP",
    ">": "COMP_OP",
    "+": "PLUS",
    "-": "MINUS",
    "(": "LPAR",
    ")": "RPAR",
    "{": "LBRACE",
    "}": "RBRACE",
    "[": "LSQB",
    "]": "RSQB",
    ",": "COMMA",
    "=": "EQUAL",
    ":": "COLON",
    ".": "DOT",
    ";": "SEMICOLON",
    "?": "OPTIONAL",
    "/": "SLASH",
}

# The keywords this fast path was written for; a keyword's kind is the word in capitals (as in Lark).
KNOWN_KEYWORDS = frozenset(
    [
        "use",
        "as",
        "import",
        "retry",
        "flow",
        "queue",
        "params",
        "defaults",
        "output",
        "schedule",
        "cron",
        "tz",
        "every",
        "at",
        "job",
        "for",
        "in",
        "priority",
        "after",
        "when",
        "timeout",
        "deadline",
        "delay",
        "unique",
        "dead_letter",
        "on",
        "never",
        "else",
        "or",
        "and",
        "not",
        "true",
        "false",
        "none",
        "limiter",
        "limit",
        "by",
        "fair",
        "weight",
        "signal",
        "event",
        "key",
        "within",
    ]
)
NEW_KEYWORD = "NEW_KEYWORD"  # a keyword of the grammar that the fast parser does not know yet

# After these, the post-lexer reads `{` as a dict (newlines inside are layout), elsewhere as a block.
_DICT_AFTER = frozenset(
    {"EQUAL", "LPAR", "COMMA", "LSQB", "COLON", "COMP_OP", "PLUS", "MINUS", "IN", "AND", "OR", "NOT", "WHEN"}
)

# A token: kind, text, start offset, line, column (1-based, as Lark counts them).
Token = tuple[str, str, int, int, int]


@cache
def grammar_keywords() -> dict[str, str]:
    """Every keyword of `tqflow.lark` (its quoted words) → its token kind. Read from the grammar so a
    keyword added there is never lexed as a name here: it is NEW_KEYWORD until the fast parser knows it."""
    grammar = resources.files("tqflow.dsl").joinpath("tqflow.lark").read_text(encoding="utf-8")
    code = re.sub(r"//[^\n]*", "", grammar)
    words = set(re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"', code))
    return {w: (w.upper() if w in KNOWN_KEYWORDS else NEW_KEYWORD) for w in words}


@cache
def _fixed_kinds() -> dict[str, str]:
    """The kind of every text whose kind does not depend on more than the text: keywords, operators,
    the usual blanks (`""`: dropped)."""
    return {**OPERATORS, **grammar_keywords(), " ": "", "  ": "", "    ": ""}


def _kind(value: str) -> str:
    """The kind of a matched text that is not in `_fixed_kinds` ("" for one the parser never sees)."""
    first = value[0]
    if first == "_" or first.isalpha():
        return "FSTRING" if first == "f" and value[1:2] == '"' else "NAME"
    if first.isdigit():
        if "-" in value:
            return "DATETIME" if "T" in value else "DATE"
        last = value[-1]
        if last == "%":
            return "PERCENT"
        if last in "smhd":
            return "DURATION"
        return "FLOAT" if "." in value else "INT"
    if first == '"':
        return "STRING"
    if first == "\n" or first == "\r" or (first == "#" and "\n" in value):
        return "_NL"
    if first == "\\":
        return "_CONTINUATION"
    return ""  # blanks and a comment without its newline


# The kinds the post-lexer and the line count look at; every other token is passed on as it is.
_SPECIAL = frozenset({"", "_NL", "_CONTINUATION", "LPAR", "LSQB", "LBRACE", "RPAR", "RSQB", "RBRACE"})


def tokens(text: str, offset: int = 0, line: int = 1, column: int = 1) -> list[Token]:
    """The tokens of `text` after the post-lexer, ending with `$END`; `text` starts at `offset`, `line`
    and `column` of its file (an f-string's embedded expression starts inside a line)."""
    pieces = _TOKEN.findall(text)
    if sum(map(len, pieces)) != len(text):
        raise Fallback("a character no terminal matches")
    fixed = _fixed_kinds()
    out: list[Token] = []
    append = out.append
    stack: list[str] = []  # the post-lexer's open brackets: LPAR, LSQB, DICT or BLOCK
    line_start = offset - (column - 1)  # the offset where the current line starts
    start = offset
    for value in pieces:
        begin = start
        start += len(value)
        kind = fixed.get(value)
        if kind is None:
            kind = _kind(value)
        if kind in _SPECIAL:
            if not kind:
                continue
            if kind == "_NL":
                token = (kind, value, begin, line, begin - line_start + 1)
                line += value.count("\n")
                line_start = begin + value.rindex("\n") + 1
                if not stack or stack[-1] == "BLOCK":  # inside brackets, a newline is layout
                    append(token)
                continue
            if kind == "_CONTINUATION":
                line += 1
                line_start = start
                continue
            if kind == "LBRACE":
                # The post-lexer's history is the last three tokens passed on, that is `out[-3:]`.
                before1 = out[-3][0] if len(out) >= 3 else ""
                before3 = out[-1][0] if out else ""
                named_retry_block = before1 == "RETRY" and before3 == "EQUAL"  # retry x = {
                nested = before3 == "LBRACE" and stack[-1:] == ["DICT"]  # {{…}: …}: a dict as a key
                is_dict = (before3 in _DICT_AFTER or nested) and not named_retry_block
                stack.append("DICT" if is_dict else "BLOCK")
            elif kind == "LPAR" or kind == "LSQB":
                stack.append(kind)
            elif stack:
                stack.pop()
        append((kind, value, begin, line, begin - line_start + 1))
    append(("$END", "", start, line, start - line_start + 1))
    return out
