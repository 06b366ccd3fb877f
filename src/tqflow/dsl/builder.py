"""The AST builder: turns the Lark tree of a `.tqflow` file into `dsl.ast` nodes (bottom-up).

Kept apart from the parser (`dsl/parser.py`, which owns the grammar, the lexer tweaks and error
recovery): a construct added to the grammar gets its builder method here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lark import Token, Transformer, v_args
from lark.exceptions import UnexpectedInput

from tqflow.dsl import ast
from tqflow.dsl.literals import FSTRING_PIECES, unescape
from tqflow.dsl.source import Source, Span
from tqflow.errors import LanguageError
from tqflow.plan.durations import parse_duration

ParseFragment = Callable[[str, Source, int], ast.Expr]


class SyntaxFailure(LanguageError):
    """Raised inside the transformer for a construct that parses but is malformed (bad escape …)."""

    def __init__(self, message: str, span: Span, code: str = "TQ0001") -> None:
        super().__init__(message)
        self.span = span
        self.code = code


def meta_span(meta: Any) -> Span:
    if getattr(meta, "empty", False):
        return Span.unknown()
    return Span(meta.start_pos, meta.end_pos, meta.line, meta.column, meta.end_line, meta.end_column)


def token_span(token: Token) -> Span:
    return Span(
        token.start_pos or 0,
        token.end_pos or 0,
        token.line or 1,
        token.column or 1,
        token.end_line or 1,
        token.end_column or 1,
    )


def _unquote(token: Token, source: Source) -> str:
    raw = str(token)[1:-1]
    try:
        return unescape(raw)
    except UnicodeDecodeError as err:
        raise SyntaxFailure(f"invalid escape in string: {err.reason}", token_span(token)) from err


@dataclass(frozen=True)
class _ScheduleKey:
    """`key EXPR [within D]` inside a schedule block, until the schedule is built."""

    span: Span
    expr: ast.Expr
    within: ast.Literal | None


@v_args(meta=True)
class Builder(Transformer[Token, Any]):
    """Builds `dsl.ast` nodes bottom-up from the Lark tree."""

    def __init__(self, source: Source, parse_fragment: ParseFragment) -> None:
        super().__init__()
        self.source = source
        self.parse_fragment = parse_fragment  # parses an f-string's `{…}` part (the parser's own)

    # -- module ------------------------------------------------------------------------------
    def start(self, meta: Any, items: list[Any]) -> ast.Module:
        return ast.Module(
            span=meta_span(meta),
            source=self.source,
            uses=tuple(i for i in items if isinstance(i, ast.Use)),
            imports=tuple(i for i in items if isinstance(i, ast.Import)),
            retries=tuple(i for i in items if isinstance(i, ast.RetryDecl)),
            limiters=tuple(i for i in items if isinstance(i, ast.LimiterDecl)),
            flows=tuple(i for i in items if isinstance(i, ast.Flow)),
            flow_aliases=tuple(i for i in items if isinstance(i, ast.FlowAlias)),
        )

    def use_module(self, meta: Any, items: list[Any]) -> ast.Use:
        module, alias = items
        return ast.Use(span=meta_span(meta), module=module, alias=str(alias) if alias else None)

    def use_names(self, meta: Any, items: list[Any]) -> ast.Use:
        module, _brace, names = items
        return ast.Use(span=meta_span(meta), module=module, names=tuple(names))

    def import_decl(self, meta: Any, items: list[Any]) -> ast.Import:
        path, alias = items
        return ast.Import(span=meta_span(meta), path=_unquote(path, self.source), alias=str(alias))

    def retry_decl(self, meta: Any, items: list[Any]) -> ast.RetryDecl:
        name, spec = items
        return ast.RetryDecl(span=meta_span(meta), name=str(name), name_span=token_span(name), spec=spec)

    def limiter_decl(self, meta: Any, items: list[Any]) -> ast.LimiterDecl:
        name, call = items
        return ast.LimiterDecl(span=meta_span(meta), name=str(name), name_span=token_span(name), call=call)

    def limiter_call(self, meta: Any, items: list[Any]) -> ast.Call:
        return self.policy_call(meta, items)

    def rate_arg(self, meta: Any, items: list[Any]) -> ast.Arg:
        count, per = items
        number = ast.Literal(
            span=token_span(count),
            kind="int" if count.type == "INT" else "float",
            value=int(count) if count.type == "INT" else float(count),
            text=str(count),
        )
        if per.type == "DURATION":
            unit = ast.Literal(
                span=token_span(per), kind="duration", value=parse_duration(per), text=str(per)
            )
        else:
            unit = ast.Literal(span=token_span(per), kind="str", value=str(per), text=str(per))
        rate = ast.Rate(span=meta_span(meta), count=number, per=unit)
        return ast.Arg(span=meta_span(meta), name=None, value=rate)

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
            span=meta_span(meta),
            name=str(name),
            name_span=token_span(name),
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
        where = meta_span(meta)
        return ast.FlowAlias(span=where, name=str(name), name_span=token_span(name), target=target)

    def queue_stmt(self, meta: Any, items: list[Any]) -> tuple[str, str, Span]:
        return ("queue", _unquote(items[0], self.source), meta_span(meta))

    def params_block(self, meta: Any, items: list[Any]) -> tuple[str, tuple[ast.Param, ...], Span]:
        return ("params", tuple(i for i in items if i is not None), meta_span(meta))

    def param_decl(self, meta: Any, items: list[Any]) -> ast.Param:
        name, type_ref, default = items
        return ast.Param(span=meta_span(meta), name=str(name), type=type_ref, default=default)

    def defaults_block(self, meta: Any, items: list[Any]) -> tuple[str, tuple[ast.Setting, ...], Span]:
        return ("defaults", tuple(i for i in items if i is not None), meta_span(meta))

    def output_decl(self, meta: Any, items: list[Any]) -> ast.Output:
        name, value = items
        return ast.Output(span=meta_span(meta), name=str(name), value=value)

    def schedule_decl(self, meta: Any, items: list[Any]) -> ast.Schedule:
        kind, value, tz = items[0]
        block = items[1] or ()
        options = tuple(i for i in block if isinstance(i, ast.ScheduleOption))
        params = tuple(a for i in block if isinstance(i, tuple) for a in i)
        keys = [i for i in block if isinstance(i, _ScheduleKey)]
        if len(keys) > 1:
            raise SyntaxFailure("a schedule has at most one `key`", keys[1].span)
        key = keys[0] if keys else None
        return ast.Schedule(
            span=meta_span(meta),
            kind=kind,
            value=value,
            tz=tz,
            options=options,
            params=params,
            key=key.expr if key else None,
            key_within=key.within if key else None,
        )

    def cron_trigger(self, meta: Any, items: list[Any]) -> tuple[str, ast.Literal, ast.Literal | None]:
        cron, tz = items
        return ("cron", self._string(cron), self._string(tz) if tz is not None else None)

    def every_trigger(self, meta: Any, items: list[Any]) -> tuple[str, ast.Literal, None]:
        return ("every", self.duration(meta, items), None)  # type: ignore[return-value]

    def at_trigger(self, meta: Any, items: list[Any]) -> tuple[str, ast.Literal, None]:
        return ("at", self._string(items[0]), None)

    def event_trigger(self, meta: Any, items: list[Any]) -> tuple[str, ast.Literal, None]:
        return ("event", self._string(items[0]), None)

    def schedule_key(self, meta: Any, items: list[Any]) -> _ScheduleKey:
        expr, within = items
        literal = None
        if within is not None:
            literal = ast.Literal(
                span=token_span(within), kind="duration", value=parse_duration(within), text=str(within)
            )
        return _ScheduleKey(meta_span(meta), expr, literal)

    def _string(self, token: Token) -> ast.Literal:
        return ast.Literal(
            span=token_span(token), kind="str", value=_unquote(token, self.source), text=str(token)
        )

    def schedule_block(
        self, meta: Any, items: list[Any]
    ) -> tuple[ast.ScheduleOption | tuple[ast.Arg, ...], ...]:
        return tuple(i for i in items if i is not None)

    def schedule_params(self, meta: Any, items: list[Any]) -> tuple[ast.Arg, ...]:
        return tuple(i for i in items if i is not None)

    def schedule_param(self, meta: Any, items: list[Any]) -> ast.Arg:
        name, value = items
        return ast.Arg(span=meta_span(meta), name=str(name), name_span=token_span(name), value=value)

    def schedule_option(self, meta: Any, items: list[Any]) -> ast.ScheduleOption:
        name, value = items
        return ast.ScheduleOption(
            span=meta_span(meta), name=str(name), name_span=token_span(name), value=value
        )

    def job_decl(self, meta: Any, items: list[Any]) -> ast.Job:
        name, call, fan_out, block = items
        return ast.Job(
            span=meta_span(meta),
            name=str(name),
            name_span=token_span(name),
            call=call,
            fan_out=fan_out,
            settings=tuple(block or ()),
        )

    def signal_job(self, meta: Any, items: list[Any]) -> ast.Job:
        name, type_ref, block = items
        return ast.Job(
            span=meta_span(meta),
            name=str(name),
            name_span=token_span(name),
            call=ast.Call(span=type_ref.span, func="", args=()),
            signal=ast.SignalWait(span=type_ref.span, type=type_ref),
            settings=tuple(block or ()),
        )

    def subflow_job(self, meta: Any, items: list[Any]) -> ast.Job:
        name, call, block = items
        return ast.Job(
            span=meta_span(meta),
            name=str(name),
            name_span=token_span(name),
            call=call,
            subflow=True,
            settings=tuple(block or ()),
        )

    def fan_out(self, meta: Any, items: list[Any]) -> ast.FanOut:
        var, over = items
        return ast.FanOut(span=meta_span(meta), var=str(var), over=over)

    def job_block(self, meta: Any, items: list[Any]) -> tuple[ast.Setting, ...]:
        return tuple(i for i in items if i is not None)

    def call(self, meta: Any, items: list[Any]) -> ast.Call:
        func, *args = items
        return ast.Call(span=meta_span(meta), func=func, args=tuple(a for a in args if a is not None))

    def kwarg(self, meta: Any, items: list[Any]) -> ast.Arg:
        name, value = items
        return ast.Arg(span=meta_span(meta), name=str(name), name_span=token_span(name), value=value)

    def posarg(self, meta: Any, items: list[Any]) -> ast.Arg:
        return ast.Arg(span=meta_span(meta), name=None, value=items[0])

    # -- settings ----------------------------------------------------------------------------
    def _setting(self, kind: str, meta: Any, value: Any) -> ast.Setting:
        return ast.Setting(span=meta_span(meta), kind=kind, value=value)

    def priority_setting(self, meta: Any, items: list[Any]) -> ast.Setting:
        return self._setting("priority", meta, ast.Name(span=token_span(items[0]), id=str(items[0])))

    def retry_setting(self, meta: Any, items: list[Any]) -> ast.Setting:
        return self._setting("retry", meta, items[0])

    def after_setting(self, meta: Any, items: list[Any]) -> ast.Setting:
        return self._setting("after", meta, items[0])

    def when_setting(self, meta: Any, items: list[Any]) -> ast.Setting:
        return self._setting("when", meta, items[0])

    def _duration_setting(self, kind: str, meta: Any, token: Token) -> ast.Setting:
        literal = ast.Literal(
            span=token_span(token), kind="duration", value=parse_duration(token), text=str(token)
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
        return self._setting("unique", meta, ast.Unique(span=meta_span(meta), options=tuple(items)))

    def dead_letter_setting(self, meta: Any, items: list[Any]) -> ast.Setting:
        return self._setting("dead_letter", meta, _unquote(items[0], self.source))

    def limit_setting(self, meta: Any, items: list[Any]) -> ast.Setting:
        (name, name_span), by = items
        limit = ast.Limit(span=meta_span(meta), limiter=name, by=by, limiter_span=name_span)
        return self._setting("limit", meta, limit)

    def limiter_ref(self, meta: Any, items: list[Any]) -> tuple[str, Span]:
        return ".".join(str(i) for i in items), meta_span(meta)

    def fair_setting(self, meta: Any, items: list[Any]) -> ast.Setting:
        key, weight = items
        return self._setting("fair", meta, ast.Fair(span=meta_span(meta), key=key, weight=weight))

    def retry_block(self, meta: Any, items: list[Any]) -> ast.RetryBlock:
        return ast.RetryBlock(span=meta_span(meta), rules=tuple(i for i in items if i is not None))

    def on_rule(self, meta: Any, items: list[Any]) -> ast.RetryRule:
        names, _arrow, spec = items
        return ast.RetryRule(span=meta_span(meta), kind="on", exceptions=tuple(names), spec=spec)

    def never_rule(self, meta: Any, items: list[Any]) -> ast.RetryRule:
        return ast.RetryRule(span=meta_span(meta), kind="never", exceptions=tuple(items[0]))

    def else_rule(self, meta: Any, items: list[Any]) -> ast.RetryRule:
        return ast.RetryRule(span=meta_span(meta), kind="else", spec=items[1])

    def exception_list(self, meta: Any, items: list[Any]) -> list[ast.Name]:
        return list(items)

    def exception_name(self, meta: Any, items: list[Any]) -> ast.Name:
        return ast.Name(span=meta_span(meta), id=str(items[0]))

    def retry_spec(self, meta: Any, items: list[Any]) -> ast.RetrySpec:
        policy, *options = items
        return ast.RetrySpec(span=meta_span(meta), policy=policy, options=tuple(options))

    def policy_call(self, meta: Any, items: list[Any]) -> ast.Call:
        name, *args = items
        return ast.Call(span=meta_span(meta), func=str(name), args=tuple(a for a in args if a is not None))

    def policy_ref(self, meta: Any, items: list[Any]) -> ast.Name:
        return ast.Name(span=meta_span(meta), id=str(items[0]))

    def retry_option(self, meta: Any, items: list[Any]) -> ast.Arg:
        name, value = items
        return ast.Arg(span=meta_span(meta), name=str(name), name_span=token_span(name), value=value)

    def type_expr(self, meta: Any, items: list[Any]) -> ast.TypeRef:
        name, *rest = items
        optional = bool(rest) and isinstance(rest[-1], Token) and rest[-1].type == "OPTIONAL"
        args = tuple(r for r in rest if isinstance(r, ast.TypeRef))
        return ast.TypeRef(span=meta_span(meta), name=str(name), args=args, optional=optional)

    def name_list(self, meta: Any, items: list[Any]) -> list[str]:
        return [str(i) for i in items if i is not None]

    def dotted_name(self, meta: Any, items: list[Any]) -> str:
        return ".".join(str(i) for i in items)

    # -- expressions -------------------------------------------------------------------------
    def _bool_op(self, op: str, meta: Any, items: list[Any]) -> ast.Expr:
        left, right = items
        values = left.values if isinstance(left, ast.BoolOp) and left.op == op else (left,)
        return ast.BoolOp(span=meta_span(meta), op=op, values=(*values, right))

    def or_op(self, meta: Any, items: list[Any]) -> ast.Expr:
        return self._bool_op("or", meta, items)

    def and_op(self, meta: Any, items: list[Any]) -> ast.Expr:
        return self._bool_op("and", meta, items)

    def not_op(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.Not(span=meta_span(meta), value=items[0])

    def compare(self, meta: Any, items: list[Any]) -> ast.Expr:
        left, op, right = items
        return ast.BinOp(span=meta_span(meta), op=str(op), left=left, right=right)

    def arith(self, meta: Any, items: list[Any]) -> ast.Expr:
        left, op, right = items
        return ast.BinOp(span=meta_span(meta), op=str(op), left=left, right=right)

    def attr(self, meta: Any, items: list[Any]) -> ast.Expr:
        value, name = items
        return ast.Attr(span=meta_span(meta), value=value, attr=str(name), attr_span=token_span(name))

    def index(self, meta: Any, items: list[Any]) -> ast.Expr:
        value, idx = items
        return ast.Index(span=meta_span(meta), value=value, index=idx)

    def func_call(self, meta: Any, items: list[Any]) -> ast.Expr:
        name, *args = items
        return ast.FuncCall(
            span=meta_span(meta), func=str(name), args=tuple(a for a in args if a is not None)
        )

    def name(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.Name(span=meta_span(meta), id=str(items[0]))

    def string(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.Literal(
            span=meta_span(meta), kind="str", value=_unquote(items[0], self.source), text=str(items[0])
        )

    def fstring(self, meta: Any, items: list[Any]) -> ast.Expr:
        token: Token = items[0]
        body = str(token)[2:-1]
        base = (token.start_pos or 0) + 2
        parts: list[str | ast.Expr] = []
        for piece in FSTRING_PIECES.finditer(body):
            text = piece.group(0)
            if text in ("{{", "}}"):
                parts.append(text[0])
            elif piece.group(1) is not None:
                inner = piece.group(1)
                try:
                    parts.append(self.parse_fragment(inner, self.source, base + piece.start(1)))
                except UnexpectedInput as err:
                    span = self.source.span_at(base + piece.start(1), max(1, len(inner)))
                    raise SyntaxFailure(f"invalid expression in f-string: `{inner}`", span) from err
            elif text in ("{", "}"):
                span = self.source.span_at(base + piece.start(), 1)
                raise SyntaxFailure(f"single `{text}` in f-string (write `{text}{text}`)", span)
            else:
                parts.append(unescape(text))
        merged: list[str | ast.Expr] = []
        for part in parts:
            if isinstance(part, str) and merged and isinstance(merged[-1], str):
                merged[-1] += part
            else:
                merged.append(part)
        return ast.FString(span=meta_span(meta), parts=tuple(merged), text=str(token))

    def int_lit(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.Literal(span=meta_span(meta), kind="int", value=int(items[0]), text=str(items[0]))

    def float_lit(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.Literal(span=meta_span(meta), kind="float", value=float(items[0]), text=str(items[0]))

    def duration(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.Literal(
            span=meta_span(meta), kind="duration", value=parse_duration(items[0]), text=str(items[0])
        )

    def percent(self, meta: Any, items: list[Any]) -> ast.Expr:
        text = str(items[0])
        return ast.Literal(span=meta_span(meta), kind="percent", value=float(text[:-1]), text=text)

    def date_lit(self, meta: Any, items: list[Any]) -> ast.Expr:
        text = str(items[0])
        try:
            dt.date.fromisoformat(text)
        except ValueError as err:
            raise SyntaxFailure(f"`{text}` is not a valid date: {err}", token_span(items[0])) from err
        return ast.Literal(span=meta_span(meta), kind="date", value=text, text=text)

    def datetime_lit(self, meta: Any, items: list[Any]) -> ast.Expr:
        text = str(items[0])
        try:
            dt.datetime.fromisoformat(text)
        except ValueError as err:
            raise SyntaxFailure(
                f"`{text}` is not a valid date and time: {err}", token_span(items[0])
            ) from err
        return ast.Literal(span=meta_span(meta), kind="datetime", value=text, text=text)

    def true_lit(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.Literal(span=meta_span(meta), kind="bool", value=True, text="true")

    def false_lit(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.Literal(span=meta_span(meta), kind="bool", value=False, text="false")

    def none_lit(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.Literal(span=meta_span(meta), kind="none", value=None, text="none")

    def list_lit(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.ListExpr(span=meta_span(meta), items=tuple(i for i in items if i is not None))

    def dict_lit(self, meta: Any, items: list[Any]) -> ast.Expr:
        return ast.DictExpr(span=meta_span(meta), items=tuple(i for i in items if i is not None))

    def dict_item(self, meta: Any, items: list[Any]) -> tuple[ast.Expr, ast.Expr]:
        return (items[0], items[1])

    def __default__(self, data: str, children: list[Any], meta: Any) -> Any:
        raise AssertionError(f"grammar rule without a builder: {data}")  # pragma: no cover
