"""Parse `.tqflow` text into a `dsl.ast.Module`, collecting syntax errors as diagnostics.

Recovery: when the whole file does not parse, every top-level declaration is parsed again on
its own (the rest of the text blanked so offsets stay true), so one mistake per declaration is
reported instead of only the first in the file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.parsers.lalr_analysis import Shift

from tqflow.dsl import ast
from tqflow.dsl.diagnostics import Diagnostics, Label
from tqflow.dsl.source import Source, Span
from tqflow.dsl.syntax_hints import hint
from tqflow.errors import LanguageError
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

TOP_LEVEL = re.compile(r"^(use|import|retry|flow)\b", re.MULTILINE)


class SyntaxFailure(LanguageError):
    """Raised inside the transformer for a construct that parses but is malformed (bad escape …)."""

    def __init__(self, message: str, span: Span) -> None:
        super().__init__(message)
        self.span = span


class _BracketNewlines:
    """Post-lexer: a newline inside ( ), [ ] or a dict literal's { } is layout, not the end of a
    statement. A `{` opens a dict when it follows something that starts an expression (`=`, `(`,
    `,`, `[`, `:`, an operator); after a name, `)`, a string or a keyword it opens a block."""

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
        if token.type in _keyword_types() and not _accepts(state, token.type):
            token = Token.new_borrow_pos("NAME", str(token), token)
        state.feed_token(token)
    return interactive.feed_eof()  # type: ignore[no-any-return,no-untyped-call]


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
def _lark() -> Lark:
    grammar = resources.files("tqflow.dsl").joinpath("tqflow.lark").read_text(encoding="utf-8")
    return Lark(
        grammar, parser="lalr", start=["start", "expr"], propagate_positions=True, postlex=_BracketNewlines()
    )


def parse(source: Source, diagnostics: Diagnostics) -> ast.Module | None:
    """The module's syntax tree, or None when there were syntax errors (all of them reported)."""
    text = source.text if source.text.endswith("\n") else source.text + "\n"
    try:
        tree = _parse_tree(text, "start")
        return _Builder(source).transform(tree)  # type: ignore[no-any-return]
    except UnexpectedInput:
        pass
    except VisitError as err:
        if isinstance(err.orig_exc, SyntaxFailure):
            diagnostics.error("TQ0001", str(err.orig_exc), err.orig_exc.span, source)
            return None
        raise
    for start, end in _declaration_ranges(text):
        chunk: str | None = _blank_outside(text, start, end)
        for _ in range(MAX_ERRORS_PER_DECLARATION):
            assert chunk is not None
            try:
                _parse_tree(chunk, "start")
                break
            except UnexpectedInput as err:
                offset, recoverable = _report_syntax_error(err, source, diagnostics, chunk)
            chunk = _blank_statement(chunk, offset) if recoverable else None
            if chunk is None:
                break
    if not diagnostics.has_errors:  # the chunks parse alone but not together: report the whole
        try:
            _parse_tree(text, "start")
        except UnexpectedInput as err:
            _report_syntax_error(err, source, diagnostics, text)
    return None


def parse_expression(text: str, source: Source, offset: int) -> ast.Expr:
    """Parse an expression embedded at `offset` of `source` (an f-string's `{…}` part)."""
    tree = _parse_tree(text, "expr")
    expr: ast.Expr = _Builder(source).transform(tree)
    line, column = source.position(offset)
    shifted: ast.Expr = _shift(expr, offset, line, column)
    return shifted


def _declaration_ranges(text: str) -> list[tuple[int, int]]:
    starts = [m.start() for m in TOP_LEVEL.finditer(text)] or [0]
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
    for match in re.finditer(r'"(\\.|[^"\\\n])*"?|#[^\n]*|[{}()\[\]\n]', text):
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


def _span(meta: Any) -> Span:
    if getattr(meta, "empty", False):
        return Span.unknown()
    return Span(meta.start_pos, meta.end_pos, meta.line, meta.column, meta.end_line, meta.end_column)


def _token_span(token: Token) -> Span:
    return Span(
        token.start_pos or 0,
        token.end_pos or 0,
        token.line or 1,
        token.column or 1,
        token.end_line or 1,
        token.end_column or 1,
    )


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


def _unquote(token: Token, source: Source) -> str:
    raw = str(token)[1:-1]
    try:
        return raw.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError as err:
        raise SyntaxFailure(f"invalid escape in string: {err.reason}", _token_span(token)) from err


@v_args(meta=True)
class _Builder(Transformer[Token, Any]):
    """Builds `dsl.ast` nodes bottom-up from the Lark tree."""

    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source = source

    # -- module ------------------------------------------------------------------------------
    def start(self, meta: Any, items: list[Any]) -> ast.Module:
        return ast.Module(
            span=_span(meta),
            source=self.source,
            uses=tuple(i for i in items if isinstance(i, ast.Use)),
            imports=tuple(i for i in items if isinstance(i, ast.Import)),
            retries=tuple(i for i in items if isinstance(i, ast.RetryDecl)),
            flows=tuple(i for i in items if isinstance(i, ast.Flow)),
            flow_aliases=tuple(i for i in items if isinstance(i, ast.FlowAlias)),
        )

    def use_module(self, meta: Any, items: list[Any]) -> ast.Use:
        module, alias = items
        return ast.Use(span=_span(meta), module=module, alias=str(alias) if alias else None)

    def use_names(self, meta: Any, items: list[Any]) -> ast.Use:
        module, _brace, names = items
        return ast.Use(span=_span(meta), module=module, names=tuple(names))

    def import_decl(self, meta: Any, items: list[Any]) -> ast.Import:
        path, alias = items
        return ast.Import(span=_span(meta), path=_unquote(path, self.source), alias=str(alias))

    def retry_decl(self, meta: Any, items: list[Any]) -> ast.RetryDecl:
        name, spec = items
        return ast.RetryDecl(span=_span(meta), name=str(name), name_span=_token_span(name), spec=spec)

    def flow_decl(self, meta: Any, items: list[Any]) -> ast.Flow:
        name, *body = items
        blocks = [b for b in body if isinstance(b, tuple)]
        queue = next((b[1] for b in blocks if b[0] == "queue"), None)
        params = next((b[1] for b in blocks if b[0] == "params"), ())
        defaults = tuple(s for b in blocks if b[0] == "defaults" for s in b[1])
        spans: dict[str, Span] = {}
        for kind, _value, span in blocks:
            if kind in spans and kind != "defaults":
                raise SyntaxFailure(f"a flow has at most one `{kind}` statement", span)
            spans.setdefault(kind, span)
        return ast.Flow(
            span=_span(meta),
            name=str(name),
            name_span=_token_span(name),
            queue=queue,
            params=params,
            schedules=tuple(b for b in body if isinstance(b, ast.Schedule)),
            defaults=defaults,
            queue_span=spans.get("queue"),
            params_span=spans.get("params"),
            defaults_span=spans.get("defaults"),
            jobs=tuple(b for b in body if isinstance(b, ast.Job)),
            outputs=tuple(b for b in body if isinstance(b, ast.Output)),
        )

    def flow_alias(self, meta: Any, items: list[Any]) -> ast.FlowAlias:
        name, target = items
        span = _span(meta)
        return ast.FlowAlias(span=span, name=str(name), name_span=_token_span(name), target=target)

    def queue_stmt(self, meta: Any, items: list[Any]) -> tuple[str, str, Span]:
        return ("queue", _unquote(items[0], self.source), _span(meta))

    def params_block(self, meta: Any, items: list[Any]) -> tuple[str, tuple[ast.Param, ...], Span]:
        return ("params", tuple(items), _span(meta))

    def param_decl(self, meta: Any, items: list[Any]) -> ast.Param:
        name, type_ref, default = items
        return ast.Param(span=_span(meta), name=str(name), type=type_ref, default=default)

    def defaults_block(self, meta: Any, items: list[Any]) -> tuple[str, tuple[ast.Setting, ...], Span]:
        return ("defaults", tuple(i for i in items if i is not None), _span(meta))

    def output_decl(self, meta: Any, items: list[Any]) -> ast.Output:
        name, value = items
        return ast.Output(span=_span(meta), name=str(name), value=value)

    def schedule_decl(self, meta: Any, items: list[Any]) -> ast.Schedule:
        kind, value, tz = items[0]
        block = items[1] or ()
        options = tuple(i for i in block if isinstance(i, ast.ScheduleOption))
        params = tuple(a for i in block if isinstance(i, tuple) for a in i)
        return ast.Schedule(span=_span(meta), kind=kind, value=value, tz=tz, options=options, params=params)

    def cron_trigger(self, meta: Any, items: list[Any]) -> tuple[str, ast.Literal, ast.Literal | None]:
        cron, tz = items
        return ("cron", self._string(cron), self._string(tz) if tz is not None else None)

    def every_trigger(self, meta: Any, items: list[Any]) -> tuple[str, ast.Literal, None]:
        return ("every", self.duration(meta, items), None)  # type: ignore[return-value]

    def at_trigger(self, meta: Any, items: list[Any]) -> tuple[str, ast.Literal, None]:
        return ("at", self._string(items[0]), None)

    def _string(self, token: Token) -> ast.Literal:
        return ast.Literal(
            span=_token_span(token), kind="str", value=_unquote(token, self.source), text=str(token)
        )

    def schedule_block(
        self, meta: Any, items: list[Any]
    ) -> tuple[ast.ScheduleOption | tuple[ast.Arg, ...], ...]:
        return tuple(i for i in items if i is not None)

    def schedule_params(self, meta: Any, items: list[Any]) -> tuple[ast.Arg, ...]:
        return tuple(i for i in items if i is not None)

    def schedule_param(self, meta: Any, items: list[Any]) -> ast.Arg:
        name, value = items
        return ast.Arg(span=_span(meta), name=str(name), name_span=_token_span(name), value=value)

    def schedule_option(self, meta: Any, items: list[Any]) -> ast.ScheduleOption:
        name, value = items
        return ast.ScheduleOption(span=_span(meta), name=str(name), name_span=_token_span(name), value=value)

    def job_decl(self, meta: Any, items: list[Any]) -> ast.Job:
        name, call, fan_out, block = items
        return ast.Job(
            span=_span(meta),
            name=str(name),
            name_span=_token_span(name),
            call=call,
            fan_out=fan_out,
            settings=tuple(block or ()),
        )

    def fan_out(self, meta: Any, items: list[Any]) -> ast.FanOut:
        var, over = items
        return ast.FanOut(span=_span(meta), var=str(var), over=over)

    def job_block(self, meta: Any, items: list[Any]) -> tuple[ast.Setting, ...]:
        return tuple(i for i in items if i is not None)

    def call(self, meta: Any, items: list[Any]) -> ast.Call:
        func, *args = items
        return ast.Call(span=_span(meta), func=func, args=tuple(a for a in args if a is not None))

    def kwarg(self, meta: Any, items: list[Any]) -> ast.Arg:
        name, value = items
        return ast.Arg(span=_span(meta), name=str(name), name_span=_token_span(name), value=value)

    def posarg(self, meta: Any, items: list[Any]) -> ast.Arg:
        return ast.Arg(span=_span(meta), name=None, value=items[0])

    # -- settings ----------------------------------------------------------------------------
    def _setting(self, kind: str, meta: Any, value: Any) -> ast.Setting:
        return ast.Setting(span=_span(meta), kind=kind, value=value)

    def priority_setting(self, meta: Any, items: list[Any]) -> ast.Setting:
        return self._setting("priority", meta, ast.Name(span=_token_span(items[0]), id=str(items[0])))

    def retry_setting(self, meta: Any, items: list[Any]) -> ast.Setting:
        return self._setting("retry", meta, items[0])

    def after_setting(self, meta: Any, items: list[Any]) -> ast.Setting:
        return self._setting("after", meta, items[0])

    def when_setting(self, meta: Any, items: list[Any]) -> ast.Setting:
        return self._setting("when", meta, items[0])

    def _duration_setting(self, kind: str, meta: Any, token: Token) -> ast.Setting:
        literal = ast.Literal(
            span=_token_span(token), kind="duration", value=parse_duration(token), text=str(token)
        )
        return self._setting(kind, meta, literal)

    def timeout_setting(self, meta: Any, items: list[Any]) -> ast.Setting:
        return self._duration_setting("timeout", meta, items[0])

    def deadline_setting(self, meta: Any, items: list[Any]) -> ast.Setting:
        return self._duration_setting("deadline", meta, items[0])

    def delay_setting(self, meta: Any, items: list[Any]) -> ast.Setting:
        return self._duration_setting("delay", meta, items[0])

    def queue_setting(self, meta: Any, items: list[Any]) -> ast.Setting:
        return self._setting("queue", meta, _unquote(items[0], self.source))

    def unique_setting(self, meta: Any, items: list[Any]) -> ast.Setting:
        return self._setting("unique", meta, ast.Unique(span=_span(meta), options=tuple(items)))

    def dead_letter_setting(self, meta: Any, items: list[Any]) -> ast.Setting:
        return self._setting("dead_letter", meta, _unquote(items[0], self.source))

    def retry_block(self, meta: Any, items: list[Any]) -> ast.RetryBlock:
        return ast.RetryBlock(span=_span(meta), rules=tuple(i for i in items if i is not None))

    def on_rule(self, meta: Any, items: list[Any]) -> ast.RetryRule:
        names, _arrow, spec = items
        return ast.RetryRule(span=_span(meta), kind="on", exceptions=tuple(names), spec=spec)

    def never_rule(self, meta: Any, items: list[Any]) -> ast.RetryRule:
        return ast.RetryRule(span=_span(meta), kind="never", exceptions=tuple(items[0]))

    def else_rule(self, meta: Any, items: list[Any]) -> ast.RetryRule:
        return ast.RetryRule(span=_span(meta), kind="else", spec=items[1])

    def exception_list(self, meta: Any, items: list[Any]) -> list[ast.Name]:
        return list(items)

    def exception_name(self, meta: Any, items: list[Any]) -> ast.Name:
        return ast.Name(span=_span(meta), id=str(items[0]))

    def retry_spec(self, meta: Any, items: list[Any]) -> ast.RetrySpec:
        policy, *options = items
        return ast.RetrySpec(span=_span(meta), policy=policy, options=tuple(options))

    def policy_call(self, meta: Any, items: list[Any]) -> ast.Call:
        name, *args = items
        return ast.Call(span=_span(meta), func=str(name), args=tuple(a for a in args if a is not None))

    def policy_ref(self, meta: Any, items: list[Any]) -> ast.Name:
        return ast.Name(span=_span(meta), id=str(items[0]))

    def retry_option(self, meta: Any, items: list[Any]) -> ast.Arg:
        name, value = items
        return ast.Arg(span=_span(meta), name=str(name), name_span=_token_span(name), value=value)

    def type_expr(self, meta: Any, items: list[Any]) -> ast.TypeRef:
        name, *rest = items
        optional = bool(rest) and isinstance(rest[-1], Token) and rest[-1].type == "OPTIONAL"
        args = tuple(r for r in rest if isinstance(r, ast.TypeRef))
        return ast.TypeRef(span=_span(meta), name=str(name), args=args, optional=optional)

    def name_list(self, meta: Any, items: list[Any]) -> list[str]:
        return [str(i) for i in items if i is not None]

    def dotted_name(self, meta: Any, items: list[Any]) -> str:
        return ".".join(str(i) for i in items)

    # -- expressions -------------------------------------------------------------------------
    def _bool_op(self, op: str, meta: Any, items: list[Any]) -> ast.Expr:
        left, right = items
        values = left.values if isinstance(left, ast.BoolOp) and left.op == op else (left,)
        return ast.BoolOp(span=_span(meta), op=op, values=(*values, right))

    def or_op(self, meta: Any, items: list[Any]) -> ast.Expr:
        return self._bool_op("or", meta, items)

    def and_op(self, meta: Any, items: list[Any]) -> ast.Expr:
        return self._bool_op("and", meta, items)

    def not_op(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.Not(span=_span(meta), value=items[0])

    def compare(self, meta: Any, items: list[Any]) -> ast.Expr:
        left, op, right = items
        return ast.BinOp(span=_span(meta), op=str(op), left=left, right=right)

    def arith(self, meta: Any, items: list[Any]) -> ast.Expr:
        left, op, right = items
        return ast.BinOp(span=_span(meta), op=str(op), left=left, right=right)

    def attr(self, meta: Any, items: list[Any]) -> ast.Expr:
        value, name = items
        return ast.Attr(span=_span(meta), value=value, attr=str(name), attr_span=_token_span(name))

    def index(self, meta: Any, items: list[Any]) -> ast.Expr:
        value, idx = items
        return ast.Index(span=_span(meta), value=value, index=idx)

    def func_call(self, meta: Any, items: list[Any]) -> ast.Expr:
        name, *args = items
        return ast.FuncCall(span=_span(meta), func=str(name), args=tuple(a for a in args if a is not None))

    def name(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.Name(span=_span(meta), id=str(items[0]))

    def string(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.Literal(
            span=_span(meta), kind="str", value=_unquote(items[0], self.source), text=str(items[0])
        )

    def fstring(self, meta: Any, items: list[Any]) -> ast.Expr:
        token: Token = items[0]
        body = str(token)[2:-1]
        base = (token.start_pos or 0) + 2
        parts: list[str | ast.Expr] = []
        for piece in re.finditer(r"\{\{|\}\}|\{([^{}]*)\}|[^{}]+|[{}]", body):
            text = piece.group(0)
            if text in ("{{", "}}"):
                parts.append(text[0])
            elif piece.group(1) is not None:
                inner = piece.group(1)
                try:
                    parts.append(parse_expression(inner, self.source, base + piece.start(1)))
                except UnexpectedInput as err:
                    span = self.source.span_at(base + piece.start(1), max(1, len(inner)))
                    raise SyntaxFailure(f"invalid expression in f-string: `{inner}`", span) from err
            elif text in ("{", "}"):
                span = self.source.span_at(base + piece.start(), 1)
                raise SyntaxFailure(f"single `{text}` in f-string (write `{text}{text}`)", span)
            else:
                parts.append(text.encode("latin-1", "backslashreplace").decode("unicode_escape"))
        merged: list[str | ast.Expr] = []
        for part in parts:
            if isinstance(part, str) and merged and isinstance(merged[-1], str):
                merged[-1] += part
            else:
                merged.append(part)
        return ast.FString(span=_span(meta), parts=tuple(merged), text=str(token))

    def int_lit(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.Literal(span=_span(meta), kind="int", value=int(items[0]), text=str(items[0]))

    def float_lit(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.Literal(span=_span(meta), kind="float", value=float(items[0]), text=str(items[0]))

    def duration(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.Literal(
            span=_span(meta), kind="duration", value=parse_duration(items[0]), text=str(items[0])
        )

    def percent(self, meta: Any, items: list[Any]) -> ast.Expr:
        text = str(items[0])
        return ast.Literal(span=_span(meta), kind="percent", value=float(text[:-1]), text=text)

    def date_lit(self, meta: Any, items: list[Any]) -> ast.Expr:
        text = str(items[0])
        try:
            dt.date.fromisoformat(text)
        except ValueError as err:
            raise SyntaxFailure(f"`{text}` is not a valid date: {err}", _token_span(items[0])) from err
        return ast.Literal(span=_span(meta), kind="date", value=text, text=text)

    def datetime_lit(self, meta: Any, items: list[Any]) -> ast.Expr:
        text = str(items[0])
        try:
            dt.datetime.fromisoformat(text)
        except ValueError as err:
            raise SyntaxFailure(
                f"`{text}` is not a valid date and time: {err}", _token_span(items[0])
            ) from err
        return ast.Literal(span=_span(meta), kind="datetime", value=text, text=text)

    def true_lit(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.Literal(span=_span(meta), kind="bool", value=True, text="true")

    def false_lit(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.Literal(span=_span(meta), kind="bool", value=False, text="false")

    def none_lit(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.Literal(span=_span(meta), kind="none", value=None, text="none")

    def list_lit(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.ListExpr(span=_span(meta), items=tuple(i for i in items if i is not None))

    def dict_lit(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.DictExpr(span=_span(meta), items=tuple(i for i in items if i is not None))

    def dict_item(self, meta: Any, items: list[Any]) -> tuple[ast.Expr, ast.Expr]:
        return (items[0], items[1])

    def __default__(self, data: str, children: list[Any], meta: Any) -> Any:
        raise AssertionError(f"grammar rule without a builder: {data}")  # pragma: no cover


__all__ = ["Tree", "parse", "parse_duration", "parse_expression"]
