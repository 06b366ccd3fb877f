"""Parse `.tqflow` text into a `dsl.ast.Module`, collecting syntax errors as diagnostics.

Two paths: `dsl.fast_parser` (hand-written, no Lark) parses valid input it knows; anything else -- every
syntax error, a construct it does not know -- is parsed here with Lark and `dsl.builder`, which own the
diagnostics and the recovery. Both give the same tree (tests/compiler/test_fast_parser.py).

Recovery: when the whole file does not parse, every top-level declaration is parsed again on
its own (the rest of the text blanked so offsets stay true), so one mistake per declaration is
reported instead of only the first in the file.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.parsers.lalr_analysis import Shift

from tqflow.dsl import ast
from tqflow.dsl.builder import Builder, SyntaxFailure
from tqflow.dsl.diagnostics import Diagnostics, Label
from tqflow.dsl.fast_parser import parse_fast
from tqflow.dsl.source import Source, Span
from tqflow.dsl.syntax_hints import hint
from tqflow.plan.durations import parse_duration

TERMINAL_NAMES = {
    "NAME": "a name",
    "_NL": "end of line",
    "STRING": "a string",
    "FSTRING": "an f-string",
    "INT": "an integer",
    "FLOAT": "a number",
    "DURATION": "a duration like 30s",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "COMMA": "`,`",
    "EQUAL": "`=`",
    "COLON": "`:`",
    "DOT": "`.`",
    "SEMICOLON": "`;`",
    "$END": "end of file",
}


@cache
def _top_level() -> re.Pattern[str]:
    """Where a top-level declaration starts: a line beginning with a keyword that starts one."""
    return re.compile(rf"^({'|'.join(first_keywords('_decl'))})\b", re.MULTILINE)


class _BracketNewlines:
    """Post-lexer: a newline inside ( ), [ ] or a dict literal's { } is layout, not the end of a
    statement. A `{` opens a dict when it follows something that starts an expression (`=`, `(`,
    `,`, `[`, `:`, an operator, `when`, `by`, `weight`); after a name, `)`, a string or another keyword
    it opens a block."""

    always_accept = ("_NL",)
    DICT_AFTER = frozenset(
        {
            "EQUAL",
            "LPAR",
            "COMMA",
            "LSQB",
            "COLON",
            "COMP_OP",
            "PLUS",
            "MINUS",
            "IN",
            "AND",
            "OR",
            "NOT",
            "WHEN",
            "BY",  # limit x by {…}, fair by {…}
            "WEIGHT",
        }
    )

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        stack: list[str] = []
        history = ["", "", ""]  # the last three token types passed on
        for token in stream:
            kind = token.type
            if kind in ("LPAR", "LSQB"):
                stack.append(kind)
            elif kind == "LBRACE":
                named_retry_block = history[0] == "RETRY" and history[2] == "EQUAL"  # retry x = {
                nested = history[2] == "LBRACE" and stack[-1:] == ["DICT"]  # {{…}: …}: a dict as a key
                is_dict = (history[2] in self.DICT_AFTER or nested) and not named_retry_block
                stack.append("DICT" if is_dict else "BLOCK")
            elif kind in ("RPAR", "RSQB", "RBRACE") and stack:
                stack.pop()
            elif kind == "_NL" and stack and stack[-1] != "BLOCK":
                continue
            history = [history[1], history[2], kind]
            yield token


def _parse_tree(text: str, start: str) -> Tree[Token]:
    """Parse, reading a keyword as a plain name wherever the grammar expects a name and not the
    keyword (so `params.queue`, `retry none` and a parameter called `delay` all work)."""
    interactive = _lark().parse_interactive(text, start=start)
    state = interactive.parser_state
    for token in interactive.lexer_thread.lex(state):  # type: ignore[no-untyped-call]
        if _read_as_name(text, state, token):
            token = Token.new_borrow_pos("NAME", str(token), token)
        state.feed_token(token)
    return interactive.feed_eof()  # type: ignore[no-any-return,no-untyped-call]


# `job x = signal T {…}` and `job x = flow other(…)` are constructs; `job x = signal.f()` and `flow.f()`
# call a task of a module imported as `signal` or `flow`: these keywords before `.` or `(` are names there.
CONTEXTUAL_KEYWORDS = frozenset({"SIGNAL", "FLOW"})
_CALL_AFTER = re.compile(r"[\t \f]*[.(]")


def _read_as_name(text: str, state: Any, token: Token) -> bool:
    """A keyword the grammar does not accept here, or a contextual one a name can take the place of."""
    if token.type in CONTEXTUAL_KEYWORDS and _before_call(text, token.end_pos) and _accepts(state, "NAME"):
        return True
    return token.type in _keyword_types() and not _accepts(state, token.type)


def _before_call(text: str, end: int | None) -> bool:
    """Whether the text after a token goes on with `.` or `(` (a name's attribute or call)."""
    return end is not None and _CALL_AFTER.match(text, end) is not None


def _accepts(state: Any, terminal: str) -> bool:
    """Whether the parser would shift `terminal` here, after any reductions it triggers.

    LALR states share lookaheads, so the action table alone can say "reduce" for a token that the state
    reached after reducing will refuse; this replays the reductions on a copy of the state stack only
    (cheap, unlike copying the parser with its values).
    """
    states = state.parse_conf.states
    stack = list(state.state_stack)
    while True:
        action = states[stack[-1]].get(terminal)
        if action is None:
            return False
        kind, arg = action
        if kind is Shift:
            return True
        size = len(arg.expansion)
        if size:
            del stack[-size:]
        stack.append(states[stack[-1]][arg.origin.name][1])


@cache
def _keyword_types() -> frozenset[str]:
    return frozenset(
        t.name
        for t in _lark().terminals
        if t.pattern.type == "str" and re.fullmatch(r"[A-Za-z_]\w*", t.pattern.value)
    )


@cache
def first_keywords(rule: str) -> tuple[str, ...]:
    """The keywords (`job`, `retry`, …) that can start grammar rule `rule`, in grammar order."""
    expansions: dict[str, list[Any]] = {}
    for r in _lark().rules:
        expansions.setdefault(r.origin.name, []).append(r.expansion)
    terminals = {t.name: t for t in _lark().terminals}
    found: list[str] = []

    def visit(name: str, seen: frozenset[str]) -> None:
        for expansion in expansions.get(name, []):
            if not expansion:
                continue
            symbol = expansion[0]
            if symbol.is_term:
                pattern = terminals[symbol.name].pattern if symbol.name in terminals else None
                if pattern is not None and pattern.type == "str" and re.fullmatch(r"[a-z_]+", pattern.value):
                    found.append(pattern.value)
            elif symbol.name not in seen:
                visit(symbol.name, seen | {name})

    visit(rule, frozenset())
    return tuple(dict.fromkeys(found))


@cache
def _lark() -> Lark:
    grammar = resources.files("tqflow.dsl").joinpath("tqflow.lark").read_text(encoding="utf-8")
    return Lark(
        grammar, parser="lalr", start=["start", "expr"], propagate_positions=True, postlex=_BracketNewlines()
    )


MAX_SOURCE_CHARS = 8_000_000  # TQ0002: a flow file is text a person writes; 50,000 jobs are ~2.5 MB
MAX_NESTING = 100  # TQ0004: brackets, operators and statements nested in one another
BROKEN_NAME = re.compile(
    r"^(?:use\s+[\w.]+\s+as\s+(\w+)|use\s+([\w.]+)|import\s+\S+\s+as\s+(\w+)|retry\s+(\w+)|limiter\s+(\w+)|flow\s+(\w+))"
)


def parse(source: Source, diagnostics: Diagnostics) -> ast.Module | None:
    """The module's syntax tree, or None when there were syntax errors (all of them reported)."""
    module = parse_recovering(source, diagnostics)
    return None if diagnostics.has_errors else module


def parse_recovering(source: Source, diagnostics: Diagnostics) -> ast.Module | None:
    """The module's syntax tree. When there are syntax errors (all of them reported), the top-level
    declarations that parse on their own, so that the compiler can still check them, with the names
    the broken ones would have bound in `Module.broken` (to keep their uses quiet); None when the file
    cannot be read at all (not UTF-8, too large)."""
    if not _readable(source, diagnostics):
        return None
    text = _text_to_parse(source)
    if os.environ.get("TQFLOW_PARSER") != "lark":  # the fast path can be turned off (benchmarks, a bug)
        fast = parse_fast(text, source, MAX_NESTING)  # a shortcut for valid input; None: parse with Lark
        if fast is not None:
            return fast
    try:
        module: ast.Module = _build(_parse_tree(text, "start"), source)
        return module
    except (UnexpectedInput, SyntaxFailure):
        pass
    parts: list[ast.Module] = []
    broken: list[str] = []
    for start, end in _declaration_ranges(text):
        chunk: str | None = _blank_outside(text, start, end)
        built = False
        for attempt in range(MAX_ERRORS_PER_DECLARATION):
            assert chunk is not None
            try:
                tree = _parse_tree(chunk, "start")
                if attempt == 0:
                    parts.append(_build(tree, source))  # the declaration as written: checked
                    built = True
                break
            except UnexpectedInput as err:
                offset, recoverable = _report_syntax_error(err, source, diagnostics, chunk)
            except SyntaxFailure as err:
                diagnostics.error(err.code, str(err), err.span, source)
                break
            chunk = _blank_statement(chunk, offset) if recoverable else None
            if chunk is None:
                break
        if not built:
            match = BROKEN_NAME.match(text[start:end])
            broken.extend(g.rpartition(".")[2] for g in (match.groups() if match else ()) if g)
    if not diagnostics.has_errors:  # the chunks parse alone but not together: report the whole
        try:
            _parse_tree(text, "start")
        except UnexpectedInput as err:
            _report_syntax_error(err, source, diagnostics, text)
        return None
    return ast.Module(
        span=source.span_at(0, len(source.text)),
        source=source,
        uses=tuple(u for m in parts for u in m.uses),
        imports=tuple(i for m in parts for i in m.imports),
        retries=tuple(r for m in parts for r in m.retries),
        limiters=tuple(x for m in parts for x in m.limiters),
        flows=tuple(f for m in parts for f in m.flows),
        flow_aliases=tuple(a for m in parts for a in m.flow_aliases),
        broken=tuple(broken),
    )


def _text_to_parse(source: Source) -> str:
    text = source.text if source.text.endswith("\n") else source.text + "\n"
    if text.startswith("\ufeff"):  # a byte-order mark handed over by an editor: layout, like a space
        text = " " + text[1:]
    return text


def parse_with_lark(source: Source) -> ast.Module | None:
    """The module as the Lark path alone parses it (None on a syntax error): the reference the fast
    path is tested against."""
    try:
        module: ast.Module = _build(_parse_tree(_text_to_parse(source), "start"), source)
        return module
    except (UnexpectedInput, SyntaxFailure):
        return None


def parse_fast_only(source: Source) -> ast.Module | None:
    """The module as the fast path parses it (None where it would fall back to Lark)."""
    return parse_fast(_text_to_parse(source), source, MAX_NESTING)


def _readable(source: Source, diagnostics: Diagnostics) -> bool:
    if source.undecodable_at is not None:
        at = source.undecodable_at
        diagnostics.error(
            "TQ0003",
            "the file is not valid UTF-8 text",
            source.span_at(at, 1),
            source,
            label="this byte does not decode as UTF-8",
            help="save the file as UTF-8 (every editor can; `iconv -f latin1 -t utf-8` converts it)",
        )
        return False
    if len(source.text) > MAX_SOURCE_CHARS:
        diagnostics.error(
            "TQ0002",
            f"the file has {len(source.text):,} characters, more than the {MAX_SOURCE_CHARS:,} allowed",
            source.span_at(0, 1),
            source,
            help='split it into several files (`import "other.tqflow" as x`), or keep large data out of it',
        )
        return False
    return True


def _build(tree: Tree[Token], source: Source) -> Any:
    _check_depth(tree, source)
    try:
        return Builder(source, parse_expression).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, SyntaxFailure):
            raise err.orig_exc from None
        raise


def _check_depth(tree: Tree[Token], source: Source) -> None:
    """Refuse trees nested deeper than MAX_NESTING (everything after the parser recurses on them)."""
    stack: list[tuple[Tree[Token], int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            meta = node.meta
            start = None if getattr(meta, "empty", True) else meta.start_pos
            if start is None:
                start = next((t.start_pos for t in node.scan_values(lambda v: isinstance(v, Token))), 0)
            raise SyntaxFailure(
                f"nested too deeply: more than {MAX_NESTING} levels of brackets and operators",
                source.span_at(start or 0, 1),
                code="TQ0004",
            )
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def parse_expression(text: str, source: Source, offset: int) -> ast.Expr:
    """Parse an expression embedded at `offset` of `source` (an f-string's `{…}` part)."""
    tree = _parse_tree(text, "expr")
    expr: ast.Expr = _build(tree, source)
    line, column = source.position(offset)
    shifted: ast.Expr = _shift(expr, offset, line, column)
    return shifted


def _declaration_ranges(text: str) -> list[tuple[int, int]]:
    starts = [m.start() for m in _top_level().finditer(text)] or [0]
    if starts[0] != 0:
        starts.insert(0, 0)
    return list(zip(starts, [*starts[1:], len(text)], strict=True))


MAX_ERRORS_PER_DECLARATION = 5


def _blank_statement(text: str, offset: int) -> str | None:
    """`text` with the flow statement holding `offset` blanked out (to look for more errors after it),
    or None when that statement cannot be told apart (top level, or brackets left open)."""
    lines = text.split("\n")
    depths = _line_depths(text)
    line = text.count("\n", 0, offset)  # 0-based
    if depths[line] == 0:  # a top-level error: the whole declaration is its statement
        return None
    first = next((i for i in range(line, -1, -1) if depths[i] == 1 and lines[i].strip()), None)
    after = next((i for i in range(line + 1, len(lines)) if depths[i] <= 1 and lines[i].strip()), None)
    if first is None or after is None:
        return None
    blanked = [re.sub(r"[^\n]", " ", x) if first <= i < after else x for i, x in enumerate(lines)]
    return "\n".join(blanked)


def _line_depths(text: str) -> list[int]:
    """How many brackets are open at the start of each line (strings and comments skipped)."""
    depths, depth = [0], 0
    for match in re.finditer(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"?|#[^\n]*|[{}()\[\]\n]', text):
        token = match.group(0)
        if token == "\n":
            depths.append(depth)
        elif token in "{([":
            depth += 1
        elif token in "})]":
            depth = max(0, depth - 1)
    return depths


def _blank_outside(text: str, start: int, end: int) -> str:
    def blank(part: str) -> str:
        return re.sub(r"[^\n]", " ", part)

    return blank(text[:start]) + text[start:end] + blank(text[end:])


def _report_syntax_error(
    err: UnexpectedInput, source: Source, diagnostics: Diagnostics, text: str
) -> tuple[int, bool]:
    """Report one syntax error; return where it is and whether parsing may go on after its statement."""
    offset = getattr(err, "pos_in_stream", None) or 0
    if isinstance(err, UnexpectedToken):
        token = err.token
        offset = token.start_pos or 0
        found = "end of line" if token.type == "_NL" else f"`{token.value}`"
        if token.type == "$END":
            found, offset = "end of file", len(source.text)
        expected = sorted({TERMINAL_NAMES.get(t, _keyword(t)) for t in err.accepts or err.expected})
        length = max(1, len(str(token.value).split("\n")[0])) if token.type != "$END" else 1
        message = f"unexpected {found}"
    elif isinstance(err, UnexpectedCharacters):
        expected = sorted({TERMINAL_NAMES.get(t, _keyword(t)) for t in err.allowed or ()})
        ch = source.text[offset] if offset < len(source.text) else ""
        message = f"unexpected character `{ch}`"
        length = 1
    elif isinstance(err, UnexpectedEOF):
        expected = sorted({TERMINAL_NAMES.get(t, _keyword(t)) for t in err.expected})
        offset, length, message = len(source.text), 1, "unexpected end of file"
    else:  # pragma: no cover - lark has no other subclasses
        expected, length, message = [], 1, str(err)
    at_end = offset >= len(source.text.rstrip())
    found = source.text[offset : offset + length] if not at_end else ""
    better = hint(source, text, offset, found, at_end)
    offset = min(offset, max(0, len(source.text) - 1))
    shown = ", ".join(expected[:8]) + (" …" if len(expected) > 8 else "")
    diagnostics.error(
        "TQ0001",
        better.message if better else message,
        source.span_at(offset, length),
        source,
        label=f"expected {shown}" if shown else "",
        labels=tuple(Label(span, text) for span, text in better.labels) if better else (),
        notes=(f"expected one of: {shown}",) if len(expected) > 1 and not better else (),
        help=better.help if better else None,
    )
    return offset, not (better and better.message.startswith("unclosed")) and not at_end


def _keyword(terminal: str) -> str:
    """Lark names anonymous keyword terminals like `JOB` or `__ANON_3`; show the keyword itself."""
    pattern = _lark().get_terminal(terminal).pattern if terminal in _terminal_names() else None
    if pattern is not None and pattern.type == "str":
        return f"`{pattern.value}`"
    return terminal.lower()


@cache
def _terminal_names() -> frozenset[str]:
    return frozenset(t.name for t in _lark().terminals)


def _shift(node: Any, offset: int, line: int, column: int) -> Any:
    """Move spans parsed from a one-line fragment to where the fragment sits in the file."""
    if isinstance(node, Span):
        return Span(
            node.start + offset,
            node.end + offset,
            line,
            node.column + column - 1,
            line,
            node.end_column + column - 1,
        )
    if isinstance(node, tuple):
        return tuple(_shift(x, offset, line, column) for x in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes = {
            f.name: _shift(getattr(node, f.name), offset, line, column)
            for f in dataclasses.fields(node)
            if f.name != "source"
        }
        return dataclasses.replace(node, **changes)
    return node


__all__ = ["Tree", "parse", "parse_duration", "parse_expression"]
