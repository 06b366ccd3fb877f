"""A document as the editor sees it: its syntax tree, the task modules its `use` lines bind, and every
name in it that points somewhere (a task, a job, an argument, a parameter), with its span.

Diagnostics do not come from here: they are the compiler's own (`tqflow.compiler.compile_source`), so
the editor shows exactly what `tqc check` prints."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqflow.compiler.python_tasks import (
    ModuleInfo,
    ModuleNotFound,
    TaskSignature,
    find_module_file,
    read_module,
)
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import Diagnostics
from tqflow.dsl.parser import parse
from tqflow.dsl.source import Source, Span

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Ref:
    """A name in the document that means something.

    kind: "task" (the `task` of `alias.task(…)`), "module" (a `use` line, or the `alias` of a call),
    "job" (a job's name where it is declared or read), "arg" (an argument name of a task call),
    "param" (a flow parameter, declared or read as `params.x`), "var" (a fan-out variable),
    "policy" (a named retry policy, declared or used), "exception" (an exception class in a retry rule),
    "limiter" (a limiter of this file or of an imported one, declared or named by `limit`),
    "subflow" (the flow a sub-flow job runs: `other` or `x.other` of `job j = flow other(…)`).
    """

    kind: str
    span: Span
    name: str
    flow: str | None = None
    job: str | None = None  # for "arg" and "task": the job whose call it is
    declaration: bool = False


@dataclass(frozen=True)
class LimiterSite:
    """A limiter's declaration and the file it is in (this document, or a file it imports)."""

    source: Source
    decl: ast.LimiterDecl


@dataclass(frozen=True)
class FlowSite:
    """A flow's declaration and the file it is in (this document, or a file it imports)."""

    source: Source
    decl: ast.Flow


@dataclass
class Model:
    source: Source
    module: ast.Module
    modules: dict[str, ModuleInfo] = field(default_factory=dict)  # `use` alias -> module read with ast
    refs: list[Ref] = field(default_factory=list)
    limiters: dict[str, LimiterSite] = field(default_factory=dict)  # `api`, `shared.db` -> declaration
    flows: dict[str, FlowSite] = field(default_factory=dict)  # `other`, `x.other` -> declaration

    def at(self, line: int, column: int) -> Ref | None:
        """The innermost reference at a 1-based position (the end of a name counts, for a cursor)."""
        found = [r for r in self.refs if _contains(r.span, line, column)]
        return min(found, key=lambda r: r.span.end - r.span.start) if found else None

    def flow_at(self, line: int, column: int) -> ast.Flow | None:
        return next((f for f in self.module.flows if _within(f.span, line, column)), None)

    def job_at(self, line: int, column: int) -> ast.Job | None:
        """The job whose statement holds the position (its span runs to the start of the next one)."""
        flow = self.flow_at(line, column)
        if flow is None:
            return None
        return next((j for j in flow.jobs if _within(j.span, line, column)), None)

    def in_job_block(self, job: ast.Job, line: int, column: int) -> bool:
        """Whether the position is inside the `{ … }` settings block of `job`."""
        text = self.source.text
        start, end = job.call.span.end, job.span.end
        opening, closing = text.find("{", start, end), text.rfind("}", start, end)
        if opening < 0 or closing < 0:
            return False
        offset = _offset(text, line, column)
        return opening < offset <= closing

    def flow(self, name: str | None) -> ast.Flow | None:
        return next((f for f in self.module.flows if f.name == name), None)

    def job(self, flow: str | None, name: str) -> ast.Job | None:
        found = self.flow(flow)
        return next((j for j in found.jobs if j.name == name), None) if found else None

    def task(self, func: str) -> TaskSignature | None:
        """The task `alias.function` names, when the alias is a module bound by `use`."""
        alias, _, function = func.rpartition(".")
        module = self.modules.get(alias)
        return module.tasks.get(function) if module else None

    def module_of(self, func: str) -> ModuleInfo | None:
        return self.modules.get(func.rpartition(".")[0])

    def job_refs(self, flow: str | None, name: str) -> list[Ref]:
        return [r for r in self.refs if r.kind == "job" and r.flow == flow and r.name == name]


def _within(span: Span, line: int, column: int) -> bool:
    """Whether the position is in the half-open span."""
    return (span.line, span.column) <= (line, column) < (span.end_line, span.end_column)


def _offset(text: str, line: int, column: int) -> int:
    start = 0
    for _ in range(line - 1):
        start = text.index("\n", start) + 1
    return start + column - 1


def _contains(span: Span, line: int, column: int) -> bool:
    return (span.line, span.column) <= (line, column) <= (span.end_line, span.end_column)


def build(source: Source, errors: Diagnostics | None = None) -> Model | None:
    """The model of a document, or None when it does not parse (the syntax errors go to `errors`)."""
    module = parse(source, errors if errors is not None else Diagnostics())
    if module is None:
        return None
    model = Model(source, module)
    search = [source.directory]
    for use in module.uses:
        if use.names:
            continue
        try:
            model.modules[use.bound_name] = read_module(use.module, search)
        except Exception:  # not found, unreadable, a syntax error: `tqc check` says which
            continue
    imported_limiters, imported_flows = _imported_sites(source, module)
    model.limiters = {d.name: LimiterSite(source, d) for d in module.limiters} | imported_limiters
    model.flows = {f.name: FlowSite(source, f) for f in module.flows} | imported_flows
    model.refs = list(_refs(model))
    return model


def _imported_modules(source: Source, module: ast.Module) -> Iterator[tuple[str, Source, ast.Module]]:
    """Each file an `import` line names, read and parsed once: (alias, its source, its module); a file that
    cannot be read or does not parse is left out."""
    for imp in module.imports:
        try:
            imported = Source.from_file(source.directory / imp.path)
        except (OSError, ValueError):
            continue
        parsed = parse(imported, Diagnostics())
        if parsed is not None:
            yield imp.alias, imported, parsed


def _imported_sites(source: Source, module: ast.Module) -> tuple[dict[str, LimiterSite], dict[str, FlowSite]]:
    """The limiters and the flows of the imported files, as `alias.name` (sub-flow jobs' hover and
    definition use the flows)."""
    limiters: dict[str, LimiterSite] = {}
    flows: dict[str, FlowSite] = {}
    for alias, imported, parsed in _imported_modules(source, module):
        limiters.update({f"{alias}.{d.name}": LimiterSite(imported, d) for d in parsed.limiters})
        flows.update({f"{alias}.{f.name}": FlowSite(imported, f) for f in parsed.flows})
    return limiters, flows


def build_lenient(source: Source, line: int) -> Model | None:
    """The model of a document being typed. If it does not parse, try again without the lines with syntax
    errors, then also without line `line` (1-based: the one being edited), keeping every offset in place."""
    errors = Diagnostics()
    model = build(source, errors)
    if model is not None:
        return model
    broken = {d.span.line for d in errors.items}
    for blank in (broken, {*broken, line}):
        if blank:
            model = build(Source(source.path, _blank_lines(source.text, blank)))
            if model is not None:
                return model
    return None


def _blank_lines(text: str, numbers: set[int]) -> str:
    lines = text.split("\n")
    for number in numbers:
        if 0 < number <= len(lines):
            lines[number - 1] = " " * len(lines[number - 1])
    return "\n".join(lines)


def module_path(model: Model, use: ast.Use) -> Path | None:
    try:
        return find_module_file(use.module, [model.source.directory])
    except (ModuleNotFound, OSError, ValueError):
        return None


# ---- references --------------------------------------------------------------------------------


def _refs(model: Model) -> Iterator[Ref]:
    source = model.source
    for use in model.module.uses:
        yield Ref("module", use.span, use.bound_name, declaration=True)
    policies = {r.name for r in model.module.retries}
    for decl in model.module.retries:
        yield Ref("policy", decl.name_span, decl.name, declaration=True)
        yield from _retry_refs(decl.spec, policies)
    limiters = set(model.limiters)
    for limiter in model.module.limiters:
        yield Ref("limiter", limiter.name_span, limiter.name, declaration=True)
    for flow in model.module.flows:
        jobs = {j.name for j in flow.jobs}
        for param in flow.params:
            yield Ref(
                "param", _prefix(source, param.span, param.name), param.name, flow.name, declaration=True
            )
            if param.default is not None:
                yield from _expr_refs(param.default, flow.name, jobs, None)
        for schedule in flow.schedules:
            for arg in schedule.params:
                yield from _expr_refs(arg.value, flow.name, jobs, None)
        for setting in flow.defaults:
            yield from _setting_refs(setting, flow.name, jobs, None)
            yield from _retry_refs(setting.value, policies) if setting.kind == "retry" else ()
        for job in flow.jobs:
            yield Ref("job", job.name_span, job.name, flow.name, declaration=True)
            yield from _call_refs(source, job, flow.name)
            shadow = job.fan_out.var if job.fan_out else None
            if job.fan_out is not None:
                yield from _expr_refs(job.fan_out.over, flow.name, jobs, None)
            for arg in job.call.args:
                yield from _expr_refs(arg.value, flow.name, jobs, shadow)
            for setting in job.settings:
                yield from _setting_refs(setting, flow.name, jobs, shadow)
                yield from _retry_refs(setting.value, policies) if setting.kind == "retry" else ()
                if isinstance(setting.value, ast.Limit) and setting.value.limiter in limiters:
                    yield Ref("limiter", setting.value.limiter_span, setting.value.limiter, flow.name)
        for output in flow.outputs:
            yield from _expr_refs(output.value, flow.name, jobs, None)


def _prefix(source: Source, span: Span, text: str) -> Span:
    """The span of `text` where it starts `span` (a name at the start of its declaration)."""
    del source
    return sub_span(span, 0, len(text))


def sub_span(span: Span, skip: int, length: int) -> Span:
    """`length` characters from `skip` characters into `span`, on its first line (no newline between)."""
    start, column = span.start + skip, span.column + skip
    return Span(start, start + length, span.line, column, span.line, column + length)


def _call_refs(source: Source, job: ast.Job, flow: str) -> Iterator[Ref]:
    call = job.call
    start = call.span.start
    if job.subflow:
        if source.text[start : start + len(call.func)] == call.func:
            yield Ref("subflow", sub_span(call.span, 0, len(call.func)), call.func, flow, job.name)
        return
    if source.text[start : start + len(call.func)] == call.func:
        alias, dot, _function = call.func.rpartition(".")
        if dot:
            yield Ref("module", sub_span(call.span, 0, len(alias)), alias, flow, job.name)
            yield Ref("task", sub_span(call.span, len(alias) + 1, len(_function)), call.func, flow, job.name)
        else:
            yield Ref("task", sub_span(call.span, 0, len(call.func)), call.func, flow, job.name)
    for arg in call.args:
        if arg.name is not None:
            yield Ref("arg", arg.name_span, arg.name, flow, job.name)


def _retry_refs(value: object, policies: set[str]) -> Iterator[Ref]:
    """Named policies (`retry db_flaky`) and exception classes (`on GatewayTimeout -> …`) in a retry."""
    specs: list[ast.RetrySpec] = []
    if isinstance(value, ast.RetrySpec):
        specs.append(value)
    elif isinstance(value, ast.RetryBlock):
        for rule in value.rules:
            for name in rule.exceptions:
                yield Ref("exception", name.span, name.id)
            if rule.spec is not None:
                specs.append(rule.spec)
    for spec in specs:
        if isinstance(spec.policy, ast.Name) and spec.policy.id in policies:
            yield Ref("policy", spec.policy.span, spec.policy.id)


def _setting_refs(setting: ast.Setting, flow: str, jobs: set[str], shadow: str | None) -> Iterator[Ref]:
    """Only `after`, `when`, a `unique key=`, a `limit … by` key and `fair` hold expressions over jobs and
    parameters; other settings hold bare words (`priority high`, `retry … jitter=full`) that are not
    names of anything."""
    value = setting.value
    if setting.kind in ("after", "when") and isinstance(value, ast.Expr):
        yield from _expr_refs(value, flow, jobs, shadow)
    elif isinstance(value, ast.Limit) and value.by is not None:
        yield from _expr_refs(value.by, flow, jobs, shadow)
    elif isinstance(value, ast.Fair):
        for part in (value.key, value.weight):
            if part is not None:
                yield from _expr_refs(part, flow, jobs, shadow)
    elif isinstance(value, ast.Unique):
        for option in value.options:
            if option.name == "key":
                yield from _expr_refs(option.value, flow, jobs, shadow)


def _expr_refs(expr: ast.Expr, flow: str, jobs: set[str], shadow: str | None) -> Iterator[Ref]:
    for node in walk(expr):
        if isinstance(node, ast.Name):
            if node.id == shadow:
                yield Ref("var", node.span, node.id, flow)
            elif node.id in jobs:
                yield Ref("job", node.span, node.id, flow)
        elif (
            isinstance(node, ast.Attr)
            and isinstance(node.value, ast.Name)
            and node.value.id == "params"
            and shadow != "params"
        ):
            yield Ref("param", node.attr_span, node.attr, flow)


def walk(node: ast.Node) -> Iterator[ast.Node]:
    """`node` and every node below it."""
    stack: list[object] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Node):
            yield item
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item) if f.name != "source")
        elif isinstance(item, tuple):
            stack.extend(item)
