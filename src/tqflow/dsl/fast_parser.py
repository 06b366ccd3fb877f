"""The fast path of the parser: a recursive-descent parser over `fast_lexer`'s tokens that builds the
same `dsl.ast` nodes, with the same spans, as Lark and `dsl.builder` do -- for input it knows.

It is a shortcut, never a second opinion: on anything it does not know (a syntax error, a construct or
keyword the grammar gained after it was written, a malformed literal, deep nesting) it raises
`Fallback` and `dsl.parser` parses the file with Lark, which owns every diagnostic and the error
recovery. tests/compiler/test_fast_parser.py checks that both paths give equal trees, spans included.

How it mirrors the Lark path (see docs/architecture.md, "Two parser paths"):
- A node's span runs from the first to the last token its grammar rule consumed, a statement's trailing
  newline included (Lark's `propagate_positions`); a parenthesised expression keeps the span of what
  is inside the parentheses, and the rule around it starts at the `(`.
- A keyword is read as a name wherever the grammar does not accept that keyword (`params.queue`,
  `retry none`, a parameter called `delay`): `_name` where only a name can come, `_attr_name` after a
  dot, and `_CONVERTED_IN_EXPR` / `_CONVERTED_AT_ARG` in expressions.

To teach it a construct: add the branch here mirroring the grammar rule and the builder method, and
a case to the tests' corpus; until then, the construct's first unknown token makes it fall back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import TypeVar

from tqflow.dsl import ast
from tqflow.dsl.collector import collector_paused
from tqflow.dsl.fast_lexer import KNOWN_KEYWORDS, NEW_KEYWORD, Fallback, Token, tokens
from tqflow.dsl.literals import FSTRING_PIECES, unescape
from tqflow.dsl.source import Source, Span
from tqflow.plan.durations import parse_duration

T = TypeVar("T")
_KEYWORD_KINDS = frozenset(w.upper() for w in KNOWN_KEYWORDS)
# In an expression, `true`, `false` and `none` are literals; every other keyword there is a name
# (`not` too where only an operand can come: after `+`, `-` or a comparison).
_CONVERTED_IN_EXPR = _KEYWORD_KINDS - {"TRUE", "FALSE", "NONE"}
# Where an argument starts, `not` still starts an expression.
_CONVERTED_AT_ARG = _CONVERTED_IN_EXPR - {"NOT"}
_DICT_AFTER_KEYWORDS = frozenset({"IN", "AND", "OR", "NOT", "WHEN"})  # see fast_lexer._DICT_AFTER
_SEPARATORS = ("_NL", "SEMICOLON")
_BINARY = frozenset({"OR", "AND", "COMP_OP", "PLUS", "MINUS"})  # what continues an expression

MAX_BRACKETS = (
    40  # deeper nesting falls back to Lark, whose checks report it (and this recursion stays shallow)
)
SMALL_STATEMENT = 30  # tokens; a statement this short cannot nest deeper than MAX_NESTING (3 levels a token)


def parse_fast(text: str, source: Source, max_nesting: int) -> ast.Module | None:
    """The module parsed from `text` (the file's text as the Lark path reads it), or None to fall back."""
    try:
        with collector_paused():
            return _Parser(tokens(text), source, max_nesting).module()
    except Fallback:
        return None
    except (ValueError, UnicodeDecodeError, RecursionError, IndexError):  # a literal Lark's path reports
        return None


class _Parser:
    def __init__(self, toks: list[Token], source: Source, max_nesting: int) -> None:
        self.toks = toks
        self.kinds = [t[0] for t in toks]
        self.i = 0
        self.source = source
        self.max_nesting = max_nesting
        self.brackets = 0

    # -- helpers -----------------------------------------------------------------------------------
    def span(self, first: int, last: int) -> Span:
        """From the start of token `first` to the end of token `last`."""
        a = self.toks[first]
        kind, value, start, line, column = self.toks[last]
        end = start + len(value)
        if kind == "_NL":  # the only token that spans lines
            return _span(a[2], end, a[3], a[4], line + value.count("\n"), end - start - value.rindex("\n"))
        return _span(a[2], end, a[3], a[4], line, column + len(value))

    def token_span(self, i: int) -> Span:
        _kind, value, start, line, column = self.toks[i]
        return _span(start, start + len(value), line, column, line, column + len(value))

    def expect(self, kind: str) -> int:
        i = self.i
        if self.kinds[i] != kind:
            raise Fallback(f"expected {kind} at token {i}")
        self.i = i + 1
        return i

    def _name(self) -> int:
        """A NAME where the grammar accepts only a name, so that a keyword there is a name too."""
        i = self.i
        kind = self.kinds[i]
        if kind != "NAME":
            if kind not in _KEYWORD_KINDS:
                raise Fallback(f"expected a name at token {i}")
            self._converted(i)
        self.i = i + 1
        return i

    def _attr_name(self) -> int:
        """The name after a `.`: any word, even a keyword the fast path does not know."""
        i = self.i
        kind = self.kinds[i]
        if kind != "NAME":
            if kind not in _KEYWORD_KINDS and kind != NEW_KEYWORD:
                raise Fallback(f"expected a name at token {i}")
            self._converted(i)
        self.i = i + 1
        return i

    def _converted(self, i: int) -> None:
        # Lark's contextual lexer hands its post-lexer a NAME for such a keyword; where the post-lexer
        # would have read the keyword differently (a `{` after `in`, `and` … opens a dict; `retry x = {`
        # a block), the token streams part: do not guess.
        kinds = self.kinds
        if kinds[i + 1] == "LBRACE" and kinds[i] in _DICT_AFTER_KEYWORDS:
            raise Fallback("a keyword used as a name before `{`")
        if kinds[i] == "RETRY" and kinds[i + 2 : i + 4] == ["EQUAL", "LBRACE"]:
            raise Fallback("a keyword used as a name in `retry x = {`")

    def _skip(self, kinds: tuple[str, ...]) -> bool:
        skipped = False
        while self.kinds[self.i] in kinds:
            self.i += 1
            skipped = True
        return skipped

    def _text(self, i: int) -> str:
        return self.toks[i][1]

    def _unquote(self, i: int) -> str:
        return unescape(self.toks[i][1][1:-1])

    def _string(self, i: int) -> ast.Literal:
        text = self.toks[i][1]
        return ast.Literal(span=self.token_span(i), kind="str", value=unescape(text[1:-1]), text=text)

    def _check_nesting(self, first: int, node: object) -> None:
        """Fall back when a long statement might nest deeper than the Lark path allows (it reports it)."""
        if self.i - first > SMALL_STATEMENT and _depth_bound(node) > self.max_nesting - 8:
            raise Fallback("nested deeply")

    def _block(self, parse_item: Callable[[], T]) -> tuple[list[T], int, int]:
        """`{ item; item \n item }`: items apart by newlines or `;`; returns the items and the braces."""
        opening = self.expect("LBRACE")
        items: list[T] = []
        kinds = self.kinds
        self._skip(_SEPARATORS)
        while kinds[self.i] != "RBRACE":
            items.append(parse_item())
            if kinds[self.i] == "RBRACE":
                break
            if not self._skip(_SEPARATORS):
                raise Fallback("expected a separator")
        return items, opening, self.expect("RBRACE")

    # -- module --------------------------------------------------------------------------------
    def module(self) -> ast.Module:
        kinds = self.kinds
        uses: list[ast.Use] = []
        imports: list[ast.Import] = []
        retries: list[ast.RetryDecl] = []
        limiters: list[ast.LimiterDecl] = []
        flows: list[ast.Flow] = []
        aliases: list[ast.FlowAlias] = []
        self._skip(("_NL",))
        while (kind := kinds[self.i]) != "$END":
            if kind == "USE":
                uses.append(self.use_decl())
            elif kind == "IMPORT":
                imports.append(self.import_decl())
            elif kind == "RETRY":
                retries.append(self.retry_decl())
            elif kind == "LIMITER":
                limiters.append(self.limiter_decl())
            elif kind == "FLOW":
                flow = self.flow_decl()
                if isinstance(flow, ast.Flow):
                    flows.append(flow)
                else:
                    aliases.append(flow)
            else:
                raise Fallback(f"no declaration starts with {kind}")
            self._skip(("_NL",))
        if len(self.toks) < 2:
            raise Fallback("no tokens")
        return ast.Module(
            span=self.span(0, len(self.toks) - 2),
            source=self.source,
            uses=tuple(uses),
            imports=tuple(imports),
            retries=tuple(retries),
            limiters=tuple(limiters),
            flows=tuple(flows),
            flow_aliases=tuple(aliases),
        )

    def _dotted(self) -> str:
        parts = [self._text(self._name())]
        while self.kinds[self.i] == "DOT":
            self.i += 1
            parts.append(self._text(self._attr_name()))
        return ".".join(parts)

    def use_decl(self) -> ast.Use:
        first = self.expect("USE")
        module = self._dotted()
        kind = self.kinds[self.i]
        if kind == "DOT_BRACE":
            self.i += 1
            names = [self._text(self._name())]
            while self.kinds[self.i] == "COMMA":
                self.i += 1
                if self.kinds[self.i] == "RBRACE":
                    break
                names.append(self._text(self._name()))
            self.expect("RBRACE")
            end = self.expect("_NL")
            return ast.Use(span=self.span(first, end), module=module, names=tuple(names))
        alias = None
        if kind == "AS":
            self.i += 1
            alias = self._text(self._name())
        end = self.expect("_NL")
        return ast.Use(span=self.span(first, end), module=module, alias=alias)

    def import_decl(self) -> ast.Import:
        first = self.expect("IMPORT")
        path = self._unquote(self.expect("STRING"))
        self.expect("AS")
        alias = self._text(self._name())
        end = self.expect("_NL")
        return ast.Import(span=self.span(first, end), path=path, alias=alias)

    def retry_decl(self) -> ast.RetryDecl:
        first = self.expect("RETRY")
        name = self._name()
        self.expect("EQUAL")
        spec = self.retry_policy()
        end = self.expect("_NL")
        decl = ast.RetryDecl(
            span=self.span(first, end), name=self._text(name), name_span=self.token_span(name), spec=spec
        )
        self._check_nesting(first, decl)
        return decl

    def limiter_decl(self) -> ast.LimiterDecl:
        """`limiter api = rate(10/s, burst=20)`: a one-word call whose arguments may be rates."""
        first = self.expect("LIMITER")
        name = self._name()
        self.expect("EQUAL")
        func = self._name()
        self.expect("LPAR")
        self._enter()
        kinds = self.kinds
        args: list[ast.Arg] = []
        if kinds[self.i] != "RPAR":
            args.append(self._limiter_arg())
            while kinds[self.i] == "COMMA":
                self.i += 1
                if kinds[self.i] == "RPAR":
                    break
                args.append(self._limiter_arg())
        close = self.expect("RPAR")
        self.brackets -= 1
        end = self.expect("_NL")
        decl = ast.LimiterDecl(
            span=self.span(first, end),
            name=self._text(name),
            name_span=self.token_span(name),
            call=ast.Call(span=self.span(func, close), func=self._text(func), args=tuple(args)),
        )
        self._check_nesting(first, decl)
        return decl

    def _limiter_arg(self) -> ast.Arg:
        first = self.i
        kinds = self.kinds
        if (kinds[first] == "INT" or kinds[first] == "FLOAT") and kinds[first + 1] == "SLASH":
            self.i += 2  # `10/s`, `2.5/m` (the compiler refuses a float), `100/10s`
            count_text = self._text(first)
            count = ast.Literal(
                span=self.token_span(first),
                kind="int" if kinds[first] == "INT" else "float",
                value=int(count_text) if kinds[first] == "INT" else float(count_text),
                text=count_text,
            )
            if kinds[self.i] == "DURATION":
                at = self.expect("DURATION")
                text = self._text(at)
                per = ast.Literal(
                    span=self.token_span(at), kind="duration", value=parse_duration(text), text=text
                )
            else:
                at = self._name()
                text = self._text(at)
                per = ast.Literal(span=self.token_span(at), kind="str", value=text, text=text)
            span = self.span(first, at)
            return ast.Arg(span=span, name=None, value=ast.Rate(span=span, count=count, per=per))
        return self.arg()

    def flow_decl(self) -> ast.Flow | ast.FlowAlias:
        first = self.expect("FLOW")
        name = self._name()
        if self.kinds[self.i] == "EQUAL":
            self.i += 1
            target = self._dotted()
            end = self.expect("_NL")
            return ast.FlowAlias(
                span=self.span(first, end),
                name=self._text(name),
                name_span=self.token_span(name),
                target=target,
            )
        self.expect("LBRACE")
        kinds = self.kinds
        queue: str | None = None
        params: tuple[ast.Param, ...] = ()
        defaults: list[ast.Setting] = []
        spans: dict[str, Span] = {}  # where the first `queue`, `params` and `defaults` statements are
        schedules: list[ast.Schedule] = []
        jobs: list[ast.Job] = []
        outputs: list[ast.Output] = []
        self._skip(("_NL",))
        while (kind := kinds[self.i]) != "RBRACE":
            start = self.i
            if kind == "JOB":
                jobs.append(self.job_decl())
            elif kind == "OUTPUT":
                outputs.append(self.output_decl())
            elif kind == "SCHEDULE":
                schedules.append(self.schedule_decl())
            elif kind == "QUEUE":
                self.i += 1
                queue = self._unquote(self.expect("STRING"))
            elif kind == "PARAMS":
                self.i += 1
                params = tuple(self._block(self.param_decl)[0])
                self._check_nesting(start, params)
            elif kind == "DEFAULTS":
                self.i += 1
                settings = self._block(self.setting)[0]
                self._check_nesting(start, tuple(settings))
                defaults.extend(settings)
            else:
                raise Fallback(f"no flow statement starts with {kind}")
            if kind == "QUEUE" or kind == "PARAMS" or kind == "DEFAULTS":
                if kind in spans and kind != "DEFAULTS":
                    raise Fallback(f"a second `{kind.lower()}` statement")  # the builder's error
                span = self.span(start, self.expect("_NL"))
                spans.setdefault(kind, span)
            self._skip(("_NL",))
        self.i += 1
        end = self.expect("_NL")
        return ast.Flow(
            span=self.span(first, end),
            name=self._text(name),
            name_span=self.token_span(name),
            queue=queue,
            params=params,
            schedules=tuple(schedules),
            defaults=tuple(defaults),
            queue_span=spans.get("QUEUE"),
            params_span=spans.get("PARAMS"),
            defaults_span=spans.get("DEFAULTS"),
            jobs=tuple(jobs),
            outputs=tuple(outputs),
        )

    # -- flow statements -------------------------------------------------------------------------
    def param_decl(self) -> ast.Param:
        first = self._name()
        self.expect("COLON")
        type_ref = self.type_expr()
        default = None
        if self.kinds[self.i] == "EQUAL":
            self.i += 1
            default = self.expr()
        return ast.Param(
            span=self.span(first, self.i - 1), name=self._text(first), type=type_ref, default=default
        )

    def type_expr(self) -> ast.TypeRef:
        first = self._name()
        args: list[ast.TypeRef] = []
        if self.kinds[self.i] == "LSQB":
            self.i += 1
            self._enter()
            args.append(self.type_expr())
            while self.kinds[self.i] == "COMMA":
                self.i += 1
                args.append(self.type_expr())
            self.expect("RSQB")
            self.brackets -= 1
        optional = self.kinds[self.i] == "OPTIONAL"
        if optional:
            self.i += 1
        return ast.TypeRef(
            span=self.span(first, self.i - 1), name=self._text(first), args=tuple(args), optional=optional
        )

    def output_decl(self) -> ast.Output:
        first = self.expect("OUTPUT")
        name = self._text(self._name())
        self.expect("EQUAL")
        value = self.expr()
        end = self.expect("_NL")
        output = ast.Output(span=self.span(first, end), name=name, value=value)
        self._check_nesting(first, output)
        return output

    def schedule_decl(self) -> ast.Schedule:
        first = self.expect("SCHEDULE")
        kind = self.kinds[self.i]
        tz = None
        if kind == "CRON":
            self.i += 1
            value = self._string(self.expect("STRING"))
            if self.kinds[self.i] == "TZ":
                self.i += 1
                tz = self._string(self.expect("STRING"))
        elif kind == "EVERY":
            start = self.i
            self.i += 1
            every = self.expect("DURATION")
            text = self._text(every)
            value = ast.Literal(
                span=self.span(start, every), kind="duration", value=parse_duration(text), text=text
            )
        elif kind == "AT" or kind == "EVENT":
            self.i += 1
            value = self._string(self.expect("STRING"))
        else:
            raise Fallback(f"no trigger starts with {kind}")
        options: list[ast.ScheduleOption] = []
        params: list[ast.Arg] = []
        key: tuple[ast.Expr, ast.Literal | None] | None = None
        if self.kinds[self.i] == "LBRACE":
            items, _open, _close = self._block(self.schedule_item)
            for item in items:
                if isinstance(item, ast.ScheduleOption):
                    options.append(item)
                elif isinstance(item, _Key):
                    if key is not None:
                        raise Fallback("a second `key`: the Lark path reports it")
                    key = (item.expr, item.within)
                else:
                    params.extend(item)
        end = self.expect("_NL")
        schedule = ast.Schedule(
            span=self.span(first, end),
            kind=kind.lower(),
            value=value,
            tz=tz,
            options=tuple(options),
            params=tuple(params),
            key=key[0] if key else None,
            key_within=key[1] if key else None,
        )
        self._check_nesting(first, schedule)
        return schedule

    def schedule_item(self) -> ast.ScheduleOption | tuple[ast.Arg, ...] | _Key:
        if self.kinds[self.i] == "PARAMS":
            self.i += 1
            items, _open, _close = self._block(self.schedule_param)
            return tuple(items)
        if self.kinds[self.i] == "KEY":  # an event trigger's `key EXPR [within D]`
            self.i += 1
            expr = self.expr()
            within = None
            if self.kinds[self.i] == "WITHIN":
                self.i += 1
                at = self.expect("DURATION")
                text = self._text(at)
                within = ast.Literal(
                    span=self.token_span(at), kind="duration", value=parse_duration(text), text=text
                )
            return _Key(expr, within)
        first = self._name()
        value: ast.Expr | ast.Call
        if self.kinds[self.i] == "INT":
            at = self.expect("INT")
            text = self._text(at)
            value = ast.Literal(span=self.token_span(at), kind="int", value=int(text), text=text)
        else:
            value = self.call_or_name()
        return ast.ScheduleOption(
            span=self.span(first, self.i - 1),
            name=self._text(first),
            name_span=self.token_span(first),
            value=value,
        )

    def schedule_param(self) -> ast.Arg:
        first = self._name()
        self.expect("EQUAL")
        value = self.expr()
        return ast.Arg(
            span=self.span(first, self.i - 1),
            name=self._text(first),
            name_span=self.token_span(first),
            value=value,
        )

    def job_decl(self) -> ast.Job:
        first = self.expect("JOB")
        name = self._name()
        self.expect("EQUAL")
        kind = self.kinds[self.i]
        if (kind == "SIGNAL" or kind == "FLOW") and not self._before_call(self.i):
            return self._signal_job(first, name) if kind == "SIGNAL" else self._subflow_job(first, name)
        start = self.i
        func = self._dotted()
        args, close = self._args()
        call = ast.Call(span=self.span(start, close), func=func, args=args)
        fan_out = None
        if self.kinds[self.i] == "FOR":
            start = self.i
            self.i += 1
            var = self._text(self._name())
            self.expect("IN")
            over = self.expr()
            fan_out = ast.FanOut(span=self.span(start, self.i - 1), var=var, over=over)
        settings: list[ast.Setting] = []
        if self.kinds[self.i] == "LBRACE":
            settings, _open, _close = self._block(self.setting)
        end = self.expect("_NL")
        job = ast.Job(
            span=self.span(first, end),
            name=self._text(name),
            name_span=self.token_span(name),
            call=call,
            fan_out=fan_out,
            settings=tuple(settings),
        )
        self._check_nesting(first, job)
        return job

    def _before_call(self, i: int) -> bool:
        """`signal` or `flow` followed on its line by `.` or `(`: a name (dsl/parser.py `_before_call`)."""
        after = self.toks[i + 1]
        return after[0] in ("DOT", "LPAR") and after[3] == self.toks[i][3]

    def _subflow_job(self, first: int, name: int) -> ast.Job:
        """`job NAME = flow OTHER(args) [{ settings }]` (dsl/builder.py `subflow_job`)."""
        self.i += 1
        start = self.i
        func = self._dotted()
        args, close = self._args()
        settings: list[ast.Setting] = []
        if self.kinds[self.i] == "LBRACE":
            settings, _open, _close = self._block(self.setting)
        end = self.expect("_NL")
        job = ast.Job(
            span=self.span(first, end),
            name=self._text(name),
            name_span=self.token_span(name),
            call=ast.Call(span=self.span(start, close), func=func, args=args),
            subflow=True,
            settings=tuple(settings),
        )
        self._check_nesting(first, job)
        return job

    def _signal_job(self, first: int, name: int) -> ast.Job:
        """`job NAME = signal TYPE [{ settings }]` (dsl/builder.py `signal_job`)."""
        self.i += 1
        type_ref = self.type_expr()
        settings: list[ast.Setting] = []
        if self.kinds[self.i] == "LBRACE":
            settings, _open, _close = self._block(self.setting)
        end = self.expect("_NL")
        job = ast.Job(
            span=self.span(first, end),
            name=self._text(name),
            name_span=self.token_span(name),
            call=ast.Call(span=type_ref.span, func="", args=()),
            signal=ast.SignalWait(span=type_ref.span, type=type_ref),
            settings=tuple(settings),
        )
        self._check_nesting(first, job)
        return job

    def _args(self) -> tuple[tuple[ast.Arg, ...], int]:
        """`( arg, name=expr, … )` of a task or policy call; returns the arguments and the `)`."""
        self.expect("LPAR")
        self._enter()
        kinds = self.kinds
        args: list[ast.Arg] = []
        if kinds[self.i] != "RPAR":
            args.append(self.arg())
            while kinds[self.i] == "COMMA":
                self.i += 1
                if kinds[self.i] == "RPAR":
                    break
                args.append(self.arg())
        close = self.expect("RPAR")
        self.brackets -= 1
        return tuple(args), close

    def arg(self) -> ast.Arg:
        first = self.i
        kind = self.kinds[first]
        if (kind == "NAME" or kind in _CONVERTED_AT_ARG) and self.kinds[first + 1] == "EQUAL":
            self.i += 2
            value = self.expr()
            return ast.Arg(
                span=self.span(first, self.i - 1),
                name=self._text(first),
                name_span=self.token_span(first),
                value=value,
            )
        value = self.expr()
        return ast.Arg(span=self.span(first, self.i - 1), name=None, value=value)

    # -- settings and retry policies ---------------------------------------------------------------
    def setting(self) -> ast.Setting:
        first = self.i
        kind = self.kinds[first]
        self.i += 1
        value: ast.Expr | ast.RetrySpec | ast.RetryBlock | ast.Unique | ast.Limit | ast.Fair | str
        if kind == "AFTER" or kind == "WHEN":
            value = self.expr()
        elif kind == "PRIORITY":
            level = self._name()
            value = ast.Name(span=self.token_span(level), id=self._text(level))
        elif kind == "RETRY":
            value = self.retry_policy()
        elif kind == "TIMEOUT" or kind == "DEADLINE" or kind == "DELAY":
            at = self.expect("DURATION")
            text = self._text(at)
            value = ast.Literal(
                span=self.token_span(at), kind="duration", value=parse_duration(text), text=text
            )
        elif kind == "QUEUE" or kind == "DEAD_LETTER":
            value = self._unquote(self.expect("STRING"))
        elif kind == "UNIQUE":
            options = [self.retry_option()]
            while self.kinds[self.i] == "COMMA":
                self.i += 1
                options.append(self.retry_option())
            value = ast.Unique(span=self.span(first, self.i - 1), options=tuple(options))
        elif kind == "LIMIT":
            start = self.i
            parts = [self._text(self._name())]
            while self.kinds[self.i] == "DOT":
                self.i += 1
                parts.append(self._text(self._attr_name()))
            where = self.span(start, self.i - 1)
            by = None
            if self.kinds[self.i] == "BY":
                self.i += 1
                by = self.expr()
            value = ast.Limit(
                span=self.span(first, self.i - 1), limiter=".".join(parts), by=by, limiter_span=where
            )
        elif kind == "FAIR":
            self.expect("BY")
            key = self.expr()
            weight = None
            if self.kinds[self.i] == "WEIGHT":
                self.i += 1
                weight = self.expr()
            value = ast.Fair(span=self.span(first, self.i - 1), key=key, weight=weight)
        else:
            raise Fallback(f"no setting starts with {kind}")
        return ast.Setting(span=self.span(first, self.i - 1), kind=kind.lower(), value=value)

    def retry_policy(self) -> ast.RetrySpec | ast.RetryBlock:
        if self.kinds[self.i] != "LBRACE":
            return self.retry_spec()
        rules, opening, close = self._block(self.retry_rule)
        return ast.RetryBlock(span=self.span(opening, close), rules=tuple(rules))

    def retry_rule(self) -> ast.RetryRule:
        first = self.i
        kind = self.kinds[first]
        self.i += 1
        if kind == "ELSE":
            self.expect("ARROW")
            spec = self.retry_spec()
            return ast.RetryRule(span=self.span(first, self.i - 1), kind="else", spec=spec)
        if kind != "ON" and kind != "NEVER":
            raise Fallback(f"no retry rule starts with {kind}")
        names = [self.exception_name()]
        while self.kinds[self.i] == "COMMA":
            self.i += 1
            names.append(self.exception_name())
        if kind == "NEVER":
            return ast.RetryRule(span=self.span(first, self.i - 1), kind="never", exceptions=tuple(names))
        self.expect("ARROW")
        spec = self.retry_spec()
        return ast.RetryRule(span=self.span(first, self.i - 1), kind="on", exceptions=tuple(names), spec=spec)

    def exception_name(self) -> ast.Name:
        first = self.i
        dotted = self._dotted()
        return ast.Name(span=self.span(first, self.i - 1), id=dotted)

    def retry_spec(self) -> ast.RetrySpec:
        first = self.i
        policy = self.call_or_name()
        options: list[ast.Arg] = []
        while self.kinds[self.i] == "COMMA":
            self.i += 1
            options.append(self.retry_option())
        return ast.RetrySpec(span=self.span(first, self.i - 1), policy=policy, options=tuple(options))

    def call_or_name(self) -> ast.Call | ast.Name:
        """`fixed(30s)` (a one-word call) or `db_flaky` / `lib.db_flaky` / `none` (a reference)."""
        first = self._name()
        if self.kinds[self.i] == "LPAR":
            args, close = self._args()
            return ast.Call(span=self.span(first, close), func=self._text(first), args=args)
        parts = [self._text(first)]
        while self.kinds[self.i] == "DOT":
            self.i += 1
            parts.append(self._text(self._attr_name()))
        return ast.Name(span=self.span(first, self.i - 1), id=".".join(parts))

    def retry_option(self) -> ast.Arg:
        first = self._name()
        self.expect("EQUAL")
        value = self.expr()
        return ast.Arg(
            span=self.span(first, self.i - 1),
            name=self._text(first),
            name_span=self.token_span(first),
            value=value,
        )

    # -- expressions -------------------------------------------------------------------------------
    def _enter(self) -> None:
        self.brackets += 1
        if self.brackets > MAX_BRACKETS:
            raise Fallback("nested deeply")

    def expr(self) -> ast.Expr:
        first = self.i
        if self.kinds[first] == "NOT":
            left = self.not_expr()
        else:
            left = self.postfix()
            if self.kinds[self.i] not in _BINARY:
                return left  # the usual argument: one operand, no operator
            left = self._comparison_rest(first, self._sum_rest(first, left))
        return self._or_rest(first, self._and_rest(first, left))

    # Each level of precedence continues from its first operand (`left`, which starts at token `first`).
    def _or_rest(self, first: int, left: ast.Expr) -> ast.Expr:
        while self.kinds[self.i] == "OR":
            self.i += 1
            start = self.i
            right = self._and_rest(start, self.not_expr())
            left = _bool_op("or", self.span(first, self.i - 1), left, right)
        return left

    def _and_rest(self, first: int, left: ast.Expr) -> ast.Expr:
        while self.kinds[self.i] == "AND":
            self.i += 1
            right = self.not_expr()
            left = _bool_op("and", self.span(first, self.i - 1), left, right)
        return left

    def not_expr(self) -> ast.Expr:
        first = self.i
        if self.kinds[first] != "NOT":
            return self._comparison_rest(first, self._sum_rest(first, self.postfix()))
        self.i += 1
        self._enter()
        value = self.not_expr()
        self.brackets -= 1
        return ast.Not(span=self.span(first, self.i - 1), value=value)

    def _comparison_rest(self, first: int, left: ast.Expr) -> ast.Expr:
        if self.kinds[self.i] != "COMP_OP":
            return left
        op = self.toks[self.i][1]
        self.i += 1
        start = self.i
        right = self._sum_rest(start, self.postfix())
        return ast.BinOp(span=self.span(first, self.i - 1), op=op, left=left, right=right)

    def _sum_rest(self, first: int, left: ast.Expr) -> ast.Expr:
        kinds = self.kinds
        while (kind := kinds[self.i]) == "PLUS" or kind == "MINUS":
            op = self.toks[self.i][1]
            self.i += 1
            right = self.postfix()
            left = ast.BinOp(span=self.span(first, self.i - 1), op=op, left=left, right=right)
        return left

    def postfix(self) -> ast.Expr:
        first = self.i
        kinds = self.kinds
        kind = kinds[first]
        node: ast.Expr
        if (kind == "NAME" or kind in _CONVERTED_IN_EXPR) and kinds[first + 1] == "LPAR":
            self.i += 2
            self._enter()
            items = self._items("RPAR")
            node = ast.FuncCall(span=self.span(first, self.i - 1), func=self._text(first), args=items)
        else:
            node = self.atom()
        while True:
            kind = kinds[self.i]
            if kind == "DOT":
                self.i += 1
                name = self._attr_name()
                node = ast.Attr(
                    span=self.span(first, name),
                    value=node,
                    attr=self._text(name),
                    attr_span=self.token_span(name),
                )
            elif kind == "LSQB":
                self.i += 1
                self._enter()
                index = self.expr()
                close = self.expect("RSQB")
                self.brackets -= 1
                node = ast.Index(span=self.span(first, close), value=node, index=index)
            else:
                return node

    def _items(self, closing: str) -> tuple[ast.Expr, ...]:
        """`a, b, c,` up to and including `closing` (the opening bracket is consumed and entered)."""
        kinds = self.kinds
        items: list[ast.Expr] = []
        if kinds[self.i] != closing:
            items.append(self.expr())
            while kinds[self.i] == "COMMA":
                self.i += 1
                if kinds[self.i] == closing:
                    break
                items.append(self.expr())
        self.expect(closing)
        self.brackets -= 1
        return tuple(items)

    def atom(self) -> ast.Expr:
        i = self.i
        kind = self.kinds[i]
        text = self.toks[i][1]
        self.i = i + 1
        if kind == "NAME":
            return ast.Name(span=self.token_span(i), id=text)
        if kind == "INT":
            return ast.Literal(span=self.token_span(i), kind="int", value=int(text), text=text)
        if kind == "STRING":
            return ast.Literal(span=self.token_span(i), kind="str", value=unescape(text[1:-1]), text=text)
        if kind == "DURATION":
            return ast.Literal(
                span=self.token_span(i), kind="duration", value=parse_duration(text), text=text
            )
        if kind == "LSQB":
            self._enter()
            items = self._items("RSQB")
            return ast.ListExpr(span=self.span(i, self.i - 1), items=items)
        if kind == "LPAR":
            self._enter()
            inner = self.expr()
            self.expect("RPAR")
            self.brackets -= 1
            return inner  # its own span: the rule around it starts at the `(`
        if kind == "LBRACE":
            return self.dict_lit(i)
        if kind == "FSTRING":
            return self.fstring(i)
        if kind == "TRUE" or kind == "FALSE":
            return ast.Literal(span=self.token_span(i), kind="bool", value=kind == "TRUE", text=text)
        if kind == "NONE":
            return ast.Literal(span=self.token_span(i), kind="none", value=None, text="none")
        if kind == "FLOAT":
            return ast.Literal(span=self.token_span(i), kind="float", value=float(text), text=text)
        if kind == "PERCENT":
            return ast.Literal(span=self.token_span(i), kind="percent", value=float(text[:-1]), text=text)
        if kind == "DATE":
            dt.date.fromisoformat(text)  # ValueError: the Lark path reports it
            return ast.Literal(span=self.token_span(i), kind="date", value=text, text=text)
        if kind == "DATETIME":
            dt.datetime.fromisoformat(text)
            return ast.Literal(span=self.token_span(i), kind="datetime", value=text, text=text)
        if kind in _CONVERTED_IN_EXPR:
            self._converted(i)
            return ast.Name(span=self.token_span(i), id=text)
        raise Fallback(f"no expression starts with {kind}")

    def dict_lit(self, opening: int) -> ast.Expr:
        self._enter()
        kinds = self.kinds
        items: list[tuple[ast.Expr, ast.Expr]] = []
        while kinds[self.i] != "RBRACE":
            key = self.expr()
            self.expect("COLON")
            items.append((key, self.expr()))
            if kinds[self.i] != "COMMA":
                break
            self.i += 1
        close = self.expect("RBRACE")
        self.brackets -= 1
        return ast.DictExpr(span=self.span(opening, close), items=tuple(items))

    def fstring(self, i: int) -> ast.Expr:
        token = self.toks[i]
        text = token[1]
        base = token[2] + 2
        parts: list[str | ast.Expr] = []
        for piece in FSTRING_PIECES.finditer(text[2:-1]):
            found = piece.group(0)
            if found == "{{" or found == "}}":
                parts.append(found[0])
            elif piece.group(1) is not None:
                start = base + piece.start(1)
                parts.append(self._fragment(piece.group(1), start, token[3], token[4] + start - token[2]))
            elif found == "{" or found == "}":
                raise Fallback("a single brace in an f-string")
            else:
                parts.append(unescape(found))
        merged: list[str | ast.Expr] = []
        for part in parts:
            if isinstance(part, str) and merged and isinstance(merged[-1], str):
                merged[-1] += part
            else:
                merged.append(part)
        return ast.FString(span=self.token_span(i), parts=tuple(merged), text=text)

    def _fragment(self, text: str, offset: int, line: int, column: int) -> ast.Expr:
        """An f-string's `{…}` part, parsed alone as the Lark path does (`parse_expression`)."""
        inner = _Parser(tokens(text, offset, line, column), self.source, self.max_nesting)
        inner.brackets = self.brackets
        expr = inner.expr()
        if inner.kinds[inner.i] != "$END":
            raise Fallback("an f-string part is not one expression")
        return expr


@dataclasses.dataclass(frozen=True)
class _Key:
    """`key EXPR [within D]` in a schedule block, until the schedule is built."""

    expr: ast.Expr
    within: ast.Literal | None


def _fast_span(start: int, end: int, line: int, column: int, end_line: int, end_column: int) -> Span:
    # A Span without its dataclass __init__ (six object.__setattr__ calls for a frozen class): the same
    # object, made in half the time; a file has one to three spans a token.
    span: Span = _new(Span)
    _set(span, "__dict__", {"start": start, "end": end, "line": line, "column": column,
                            "end_line": end_line, "end_column": end_column})  # fmt: skip
    return span


_new = object.__new__
_set = object.__setattr__
_span = _fast_span if hasattr(Span.unknown(), "__dict__") else Span  # not if Span gains __slots__


def _bool_op(op: str, span: Span, left: ast.Expr, right: ast.Expr) -> ast.Expr:
    # As the builder does: `a and b and c` (or `(a and b) and c`) is one BoolOp with three values.
    values = left.values if isinstance(left, ast.BoolOp) and left.op == op else (left,)
    return ast.BoolOp(span=span, op=op, values=(*values, right))


def _depth_bound(root: object) -> int:
    """At least as deep as Lark's tree for `root` (nodes and tuples each count a level; a BoolOp of n
    values stands for n - 1 nested operators)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, tuple):
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, ast.Node):
            extra = len(node.values) - 1 if isinstance(node, ast.BoolOp) else 0
            for field in dataclasses.fields(node):
                value = getattr(node, field.name)
                if isinstance(value, ast.Node | tuple):
                    stack.append((value, depth + 1 + extra))
    return deepest
