"""Pass helper: check a job's task call against the task's Python signature (read with `ast`)."""

from __future__ import annotations

import difflib

from tqflow.compiler.context import Context
from tqflow.compiler.python_tasks import TaskSignature
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import did_you_mean
from tqflow.dsl.source import Span


def resolve_task(ctx: Context, call: ast.Call) -> TaskSignature | None:
    alias, _, function = call.func.rpartition(".")
    if not alias:
        ctx.error(
            "TQ0201",
            f"`{call.func}` is not `module.task`",
            call.span,
            help="bind a module with `use my.module as m`, then call `m.task(…)`",
        )
        return None
    module = ctx.modules.get(alias)
    if module is None:
        if alias not in ctx.unresolved:
            ctx.error(
                "TQ0101",
                f"`{alias}` is not a module bound by `use`",
                _callee(call),
                help=did_you_mean(alias, ctx.modules) or f"add `use {alias}` at the top of the file",
            )
        return None
    signature = module.tasks.get(function)
    if signature is None:
        hint = did_you_mean(function, module.tasks)
        if function in module.names and not hint:
            hint = f"`{function}` exists but is not decorated with `@task`"
        ctx.error(
            "TQ0201",
            f"module `{module.name}` has no task `{function}`",
            _task_name(call),
            notes=(f"tasks in {module.path.name}: {', '.join(sorted(module.tasks)) or 'none'}",),
            help=hint,
        )
    return signature


def check_arguments(ctx: Context, call: ast.Call, signature: TaskSignature, fan_var: str | None) -> None:
    accepts_any = any(p.kind == "var_keyword" for p in signature.params)
    named = {p.name: p for p in signature.params if p.kind in ("positional_or_keyword", "keyword_only")}
    positional_only = {p.name: p for p in signature.params if p.kind == "positional_only"}
    given: set[str] = set()
    passed = {a.name for a in call.args if a.name is not None}
    for arg in call.args:
        if arg.name is None:
            ctx.error(
                "TQ0303",
                f"positional argument to `{signature.name}`",
                arg.span,
                help="pass task arguments by name, like `x=…`",
            )
            continue
        if arg.name in given:
            ctx.error("TQ0301", f"argument `{arg.name}` is passed twice", arg.name_span)
        given.add(arg.name)
        if arg.name in positional_only:
            ctx.error(
                "TQ0301",
                f"parameter `{arg.name}` of `{signature.function}` is positional-only, so it cannot be "
                "passed by name",
                arg.name_span,
                label="positional-only (before `/` in the Python signature)",
                help="flows pass arguments by name: move the parameter after the `/` in Python",
            )
            continue
        if arg.name not in named and not accepts_any:
            unused = [n for n in named if n not in passed]
            meant = difflib.get_close_matches(arg.name, unused, n=1, cutoff=0.6)
            if meant:
                given.add(meant[0])  # a misspelling of a parameter: one error, not a "missing" one too
            ctx.error(
                "TQ0301",
                f"task `{signature.function}` has no parameter `{arg.name}`",
                arg.name_span,
                label="unknown argument",
                notes=(f"`{signature.function}` takes: {_describe(signature)}",),
                help=f"did you mean `{meant[0]}`?" if meant else did_you_mean(arg.name, named),
            )
    for param in positional_only.values():
        if not param.has_default and param.name not in given:
            ctx.error(
                "TQ0302",
                f"missing argument `{param.name}` for task `{signature.function}`: it is positional-only, "
                "and a flow passes arguments by name",
                _callee(call),
                notes=(f"`{signature.function}` takes: {_describe(signature)}",),
                help="move the parameter after the `/` in the Python signature",
            )
    missing = [p.name for p in named.values() if not p.has_default and p.name not in given]
    for name in missing:
        ctx.error(
            "TQ0302",
            f"missing argument `{name}` for task `{signature.function}`",
            _callee(call),
            notes=(f"`{signature.function}` takes: {_describe(signature)}",),
        )
    del fan_var  # the fan-out variable is an ordinary name inside the arguments


def _describe(signature: TaskSignature) -> str:
    parts = []
    for p in signature.params:
        if p.kind in ("positional_or_keyword", "keyword_only", "positional_only"):
            parts.append(f"{p.name}: {p.annotation}" if p.annotation else p.name)
        if p.kind == "positional_only" and (
            p is signature.params[-1]
            or signature.params[signature.params.index(p) + 1].kind != "positional_only"
        ):
            parts.append("/")
    return "(" + ", ".join(parts) + ")"


def _callee(call: ast.Call) -> Span:
    """The `module.task` part of a call: where a caret for the call as a whole goes (not the arguments)."""
    span = call.span
    length = len(call.func)
    return Span(span.start, span.start + length, span.line, span.column, span.line, span.column + length)


def _task_name(call: ast.Call) -> Span:
    """The `task` of `module.task(…)`."""
    whole = _callee(call)
    skip = len(call.func.rpartition(".")[0]) + 1
    return Span(whole.start + skip, whole.end, whole.line, whole.column + skip, whole.line, whole.end_column)
