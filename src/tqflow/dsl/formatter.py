"""`tqc fmt`: print a module in the one canonical layout, keeping its comments.

The printer walks the syntax tree and emits lines, each tagged with the source line its node came
from (its *anchor*). Comments are not in the tree: they are read from the text separately and put
back by anchor: a comment on a line of its own goes before the first printed line that comes after
it in the source; a comment at the end of a line goes at the end of the printed line holding that
source line. Because placement is by anchor, comments follow their statement even when the
canonical order moves the statement (a flow's `queue`, `params`, `schedule`, `defaults`, jobs and
outputs always come in that order). `format_source` re-parses its output and refuses to return it
unless the tree is unchanged (spans are not part of tree equality).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from tqflow.dsl import ast
from tqflow.dsl.collector import collector_paused
from tqflow.dsl.diagnostics import Diagnostics, render_all
from tqflow.dsl.parser import parse
from tqflow.dsl.source import Source, Span
from tqflow.errors import LanguageError

INDENT = "  "
WIDTH = 100
UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))

# Precedence levels of the grammar (higher binds tighter).
OR, AND, NOT, COMPARE, SUM, POSTFIX, ATOM = range(1, 8)
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


class FormatError(LanguageError):
    """The file does not parse (the message holds the rendered diagnostics)."""


@dataclass
class Line:
    indent: int
    text: str
    anchor: int  # the source line this printed line stands for (0: none)
    closing: bool = False  # a closing brace: comments before it are indented one level deeper
    comments_before: list[str] = field(default_factory=list)
    trailing: str = ""


@dataclass(frozen=True)
class Comment:
    line: int
    text: str
    own_line: bool


def format_source(text: str | Source, path: str = "<fmt>") -> str:
    """The canonical layout of `text` (or of a `Source` read with `Source.from_file`); FormatError
    when it does not parse."""
    with collector_paused():
        return _format(text if isinstance(text, Source) else Source(path, text))


def _format(source: Source) -> str:
    text, path = source.text, source.path
    diagnostics = Diagnostics()
    module = parse(source, diagnostics)
    if module is None:
        raise FormatError(render_all(diagnostics))
    result = format_module(module, text)
    if result == text:
        return result  # already canonical: nothing to verify (halves `tqc fmt --check`)
    check = Diagnostics()
    again = parse(Source(path, result), check)
    if again != module:  # pragma: no cover - a printer bug; never hand back a changed program
        raise FormatError(f"internal error: formatting {path} would change its meaning")
    return result


def format_module(module: ast.Module, text: str) -> str:
    printer = _Printer(text)
    printer.module(module)
    return _merge(printer.lines, comments(text))


# ---- comments -----------------------------------------------------------------------------------

_TOKENS = re.compile(r'f?"[^"\\\n]*(?:\\.[^"\\\n]*)*"|#[^\n]*|\n|[^"#\nf]+|f')


def comments(text: str) -> list[Comment]:
    """Every `#` comment outside strings, with its line and whether it stands on a line of its own."""
    found = []
    line, line_has_code = 1, False
    for match in _TOKENS.finditer(text):
        token = match.group(0)
        if token == "\n":
            line, line_has_code = line + 1, False
        elif token.startswith("#"):
            found.append(Comment(line, token.rstrip(), own_line=not line_has_code))
        elif token.strip():
            line_has_code = True
    return found


def _merge(lines: list[Line | None], found: list[Comment]) -> str:
    printed = [x for x in lines if x is not None]
    # The printed lines by (anchor, order): a comment's line is found by bisection, not by a scan of
    # every line (a file with a comment a job was quadratic).
    by_anchor = sorted((x.anchor, i) for i, x in enumerate(printed) if x.anchor > 0)
    anchors = [a for a, _i in by_anchor]
    tail: list[str] = []
    for comment in found:
        at = bisect.bisect_right(anchors, comment.line)
        if comment.own_line:  # before the first printed line from a later source line
            if at < len(anchors):
                printed[by_anchor[at][1]].comments_before.append(comment.text)
            else:
                tail.append(comment.text)
        elif at > 0:  # at the end of the last printed line from this source line or an earlier one
            target = printed[by_anchor[at - 1][1]]
            target.trailing = f"{target.trailing}  {comment.text}" if target.trailing else comment.text
        else:
            tail.append(comment.text)
    out: list[str] = []
    for item in lines:
        if item is None:
            if out and out[-1] != "":
                out.append("")
            continue
        depth = item.indent + (1 if item.closing else 0)
        out.extend(f"{INDENT * depth}{c}" for c in item.comments_before)
        trailing = f"  {item.trailing}" if item.trailing else ""
        out.append(f"{INDENT * item.indent}{item.text}{trailing}")
    if tail:
        if out and out[-1] != "":
            out.append("")
        out.extend(tail)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


# ---- the printer --------------------------------------------------------------------------------


class _Printer:
    def __init__(self, text: str) -> None:
        self.source_lines = text.splitlines()
        self.lines: list[Line | None] = []  # None: a blank line
        self.text = text

    def end(self, span: Span) -> int:
        """The last line of a node that holds code (spans also cover the newlines and comments after)."""
        body = re.sub(r"(\s|#[^\n]*)*$", "", self.text[span.start : span.end])
        return span.line + body.count("\n")

    def emit(self, indent: int, text: str, anchor: Span | int | None, closing: bool = False) -> None:
        line = anchor.line if isinstance(anchor, Span) else anchor or 0
        self.lines.append(Line(indent, text, line, closing))

    def blank(self) -> None:
        if self.lines and self.lines[-1] is not None:
            self.lines.append(None)

    def blank_if_source_had(self, previous: Span | None, node: Span) -> None:
        """Keep one blank line where the author left one (between two statements of a block)."""
        if previous is None:
            return
        last = self.end(previous)
        between = self.source_lines[last : max(last, node.line - 1)]
        if any(not line.strip() for line in between):
            self.blank()

    # -- declarations --------------------------------------------------------------------------
    def module(self, module: ast.Module) -> None:
        previous: Span | None = None
        heads: tuple[ast.Use | ast.Import, ...] = (*module.uses, *module.imports)
        for node in heads:
            self.blank_if_source_had(previous, node.span)
            self.emit(0, _use(node) if isinstance(node, ast.Use) else _import(node), node.span)
            previous = node.span
        self.blank()
        previous = None
        for decl in module.retries:
            self.blank_if_source_had(previous, decl.span)
            self.retry_decl(decl)
            previous = decl.span
        if module.limiters:
            self.blank()
        previous = None
        for limiter in module.limiters:
            self.blank_if_source_had(previous, limiter.span)
            self.emit(0, f"limiter {limiter.name} = {_call(limiter.call, 1)}", limiter.span)
            previous = limiter.span
        if module.flow_aliases:
            self.blank()
        for alias in module.flow_aliases:
            self.emit(0, f"flow {alias.name} = {alias.target}", alias.span)
        for flow in module.flows:
            self.blank()
            self.flow(flow)

    def retry_decl(self, decl: ast.RetryDecl) -> None:
        if isinstance(decl.spec, ast.RetryBlock):
            self.emit(0, f"retry {decl.name} = {{", decl.span)
            self.retry_rules(decl.spec, 1)
            self.emit(0, "}", self.end(decl.span), closing=True)
        else:
            self.emit(0, f"retry {decl.name} = {retry_spec(decl.spec)}", decl.span)

    def retry_rules(self, block: ast.RetryBlock, indent: int) -> None:
        for rule in block.rules:
            self.emit(indent, _rule(rule), rule.span)

    def flow(self, flow: ast.Flow) -> None:
        self.emit(0, f"flow {flow.name} {{", flow.span)
        previous: Span | None = None
        if flow.queue is not None:
            span = flow.queue_span or flow.span
            self.emit(1, f"queue {quote(flow.queue)}", span)
            previous = span
        if flow.params or flow.params_span is not None:
            span = flow.params_span or flow.span
            self.blank_if_source_had(previous, span)
            self.params(flow, span)
            previous = span
        for schedule in flow.schedules:
            self.blank_if_source_had(previous, schedule.span)
            self.schedule(schedule)
            previous = schedule.span
        if flow.defaults:
            span = flow.defaults_span or flow.defaults[0].span
            self.blank_if_source_had(previous, span)
            self.defaults(flow.defaults, span)
            previous = span
        body: tuple[ast.Job | ast.Output, ...] = (*flow.jobs, *flow.outputs)
        for node in body:
            self.blank_if_source_had(previous, node.span)
            if isinstance(node, ast.Job):
                self.job(node)
            else:
                self.emit(1, f"output {node.name} = {expr(node.value, 1)}", node.span)
            previous = node.span
        self.emit(0, "}", self.end(flow.span), closing=True)

    def params(self, flow: ast.Flow, span: Span) -> None:
        self.emit(1, "params {", span)
        for param in flow.params:
            default = f" = {expr(param.default, 2)}" if param.default is not None else ""
            self.emit(2, f"{param.name}: {param.type}{default}", param.span)
        self.emit(1, "}", self.end(span), closing=True)

    def schedule(self, schedule: ast.Schedule) -> None:
        head = f"schedule {schedule.kind} {literal(schedule.value)}"
        if schedule.tz is not None:
            head += f" tz {literal(schedule.tz)}"
        if not schedule.options and not schedule.params and schedule.key is None:
            self.emit(1, head, schedule.span)
            return
        self.emit(1, head + " {", schedule.span)
        for option in schedule.options:
            value = option.value
            shown = _call(value, 2) if isinstance(value, ast.Call) else expr(value, 2)
            self.emit(2, f"{option.name} {shown}", option.span)
        if schedule.params:
            self.emit(2, "params {", schedule.params[0].span.line - 1 or schedule.span)
            for arg in schedule.params:
                self.emit(3, f"{arg.name} = {expr(arg.value, 3)}", arg.span)
            self.emit(2, "}", self.end(schedule.params[-1].span) + 1, closing=True)
        if schedule.key is not None:
            within = f" within {literal(schedule.key_within)}" if schedule.key_within is not None else ""
            self.emit(2, f"key {expr(schedule.key, 2)}{within}", schedule.key.span)
        self.emit(1, "}", self.end(schedule.span), closing=True)

    def defaults(self, settings: tuple[ast.Setting, ...], span: Span) -> None:
        one_line = f"defaults {{ {'; '.join(setting(s, 1) for s in settings)} }}"
        blocks = any(isinstance(s.value, ast.RetryBlock) for s in settings)
        if not blocks and len(INDENT + one_line) <= WIDTH:
            self.emit(1, one_line, span)
            return
        self.emit(1, "defaults {", span)
        self.settings(settings, 2)
        self.emit(1, "}", self.end(span), closing=True)

    def settings(self, settings: tuple[ast.Setting, ...], indent: int) -> None:
        for item in settings:
            if isinstance(item.value, ast.RetryBlock):
                self.emit(indent, "retry {", item.span)
                self.retry_rules(item.value, indent + 1)
                self.emit(indent, "}", self.end(item.span), closing=True)
            else:
                self.emit(indent, setting(item, indent), item.span)

    def job(self, job: ast.Job) -> None:
        head = f"job {job.name} = {_call(job.call, 1)}"
        if job.signal is not None:
            head = f"job {job.name} = signal {job.signal.type}"
        elif job.subflow:
            head = f"job {job.name} = flow {_call(job.call, 1)}"
        if job.fan_out is not None:
            head += f" for {job.fan_out.var} in {expr(job.fan_out.over, 1)}"
        if not job.settings:
            self.emit(1, head, job.span)
            return
        self.emit(1, head + " {", job.span)
        self.settings(job.settings, 2)
        self.emit(1, "}", self.end(job.span), closing=True)


def _use(use: ast.Use) -> str:
    if use.names:
        return f"use {use.module}.{{{', '.join(use.names)}}}"
    return f"use {use.module}" + (f" as {use.alias}" if use.alias else "")


def _import(imp: ast.Import) -> str:
    return f"import {quote(imp.path)} as {imp.alias}"


def _rule(rule: ast.RetryRule) -> str:
    names = ", ".join(e.id for e in rule.exceptions)
    if rule.kind == "never":
        return f"never {names}"
    assert rule.spec is not None
    target = f"on {names}" if rule.kind == "on" else "else"
    return f"{target} -> {retry_spec(rule.spec)}"


def retry_spec(spec: ast.RetrySpec) -> str:
    policy = spec.policy.id if isinstance(spec.policy, ast.Name) else _call(spec.policy, 1)
    return ", ".join([policy, *(f"{o.name}={expr(o.value, 1)}" for o in spec.options)])


def setting(item: ast.Setting, indent: int) -> str:
    value = item.value
    if isinstance(value, str):
        return f"{item.kind} {quote(value)}"
    if isinstance(value, ast.RetrySpec):
        return f"retry {retry_spec(value)}"
    if isinstance(value, ast.RetryBlock):
        return "retry { " + "; ".join(_rule(r) for r in value.rules) + " }"
    if isinstance(value, ast.Unique):
        return "unique " + ", ".join(f"{o.name}={expr(o.value, indent)}" for o in value.options)
    if isinstance(value, ast.Limit):
        by = f" by {expr(value.by, indent)}" if value.by is not None else ""
        return f"limit {value.limiter}{by}"
    if isinstance(value, ast.Fair):
        weight = f" weight {expr(value.weight, indent)}" if value.weight is not None else ""
        return f"fair by {expr(value.key, indent)}{weight}"
    return f"{item.kind} {expr(value, indent)}"


def _call(call: ast.Call, indent: int) -> str:
    args = [f"{a.name}={expr(a.value, indent)}" if a.name else expr(a.value, indent) for a in call.args]
    one_line = f"{call.func}({', '.join(args)})"
    if len(INDENT * indent) + len(one_line) <= WIDTH or len(args) < 2:
        return one_line
    args = [
        f"{a.name}={expr(a.value, indent + 1)}" if a.name else expr(a.value, indent + 1) for a in call.args
    ]
    inner = INDENT * (indent + 1)
    return f"{call.func}(\n" + "".join(f"{inner}{a},\n" for a in args) + f"{INDENT * indent})"


# ---- expressions --------------------------------------------------------------------------------


def expr(node: ast.Expr, indent: int = 0) -> str:
    return _expr(node, indent)[0]


def _wrap(node: ast.Expr, indent: int, at_least: int) -> str:
    text, level = _expr(node, indent)
    return text if level >= at_least else f"({text})"


def _expr(node: ast.Expr, indent: int) -> tuple[str, int]:
    match node:
        case ast.BoolOp(op=op, values=values):
            level = OR if op == "or" else AND
            return f" {op} ".join(_wrap(v, indent, level + 1) for v in values), level
        case ast.Not(value=value):
            return f"not {_wrap(value, indent, NOT)}", NOT
        case ast.BinOp(op=op, left=left, right=right) if op in COMPARISONS:
            return f"{_wrap(left, indent, SUM)} {op} {_wrap(right, indent, SUM)}", COMPARE
        case ast.BinOp(op=op, left=left, right=right):
            return f"{_wrap(left, indent, SUM)} {op} {_wrap(right, indent, POSTFIX)}", SUM
        case ast.Attr(value=value, attr=attr):
            return f"{_wrap(value, indent, POSTFIX)}.{attr}", POSTFIX
        case ast.Index(value=value, index=index):
            return f"{_wrap(value, indent, POSTFIX)}[{expr(index, indent)}]", POSTFIX
        case ast.FuncCall(func=func, args=args):
            return f"{func}({', '.join(expr(a, indent) for a in args)})", POSTFIX
        case ast.ListExpr(items=items):
            return f"[{', '.join(expr(i, indent) for i in items)}]", ATOM
        case ast.DictExpr(items=items):
            return _dict(items, indent), ATOM
        case ast.Name(id=name):
            return name, ATOM
        case ast.Literal():
            return literal(node), ATOM
        case ast.FString():
            return node.text or _fstring(node), ATOM
        case ast.Rate(count=count, per=per):
            return f"{literal(count)}/{literal(per)}", ATOM
    raise AssertionError(f"unhandled expression {node!r}")  # pragma: no cover


def _dict(items: tuple[tuple[ast.Expr, ast.Expr], ...], indent: int) -> str:
    pairs = [f"{expr(k, indent + 1)}: {expr(v, indent + 1)}" for k, v in items]
    one_line = "{" + ", ".join(pairs) + "}"
    if len(items) < 3 and len(one_line) <= 60:
        return one_line
    inner = INDENT * (indent + 1)
    return "{\n" + "".join(f"{inner}{p},\n" for p in pairs) + INDENT * indent + "}"


def literal(node: ast.Literal) -> str:
    if node.text:
        return node.text
    value = node.value
    match node.kind:
        case "str":
            return quote(str(value))
        case "bool":
            return "true" if value else "false"
        case "none":
            return "none"
        case "duration":
            return duration(int(str(value)))
        case "percent":
            return f"{float(str(value)):g}%"
        case "float":
            return repr(float(str(value)))
    return str(value)


def duration(ms: int) -> str:
    for unit, size in UNITS:
        if ms % size == 0 and (ms or unit == "ms"):
            return f"{ms // size}{unit}"
    return f"{ms}ms"  # pragma: no cover


def quote(text: str) -> str:
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _fstring(node: ast.FString) -> str:
    parts = []
    for part in node.parts:
        if isinstance(part, str):
            parts.append(quote(part)[1:-1].replace("{", "{{").replace("}", "}}"))
        else:
            parts.append("{" + expr(part) + "}")
    return 'f"' + "".join(parts) + '"'
