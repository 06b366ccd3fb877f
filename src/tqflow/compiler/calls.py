"""Pass helper: check a job's task call against the task's Python signature (read with `ast`)."""

from __future__ import annotations

from tqflow.compiler.context import Context
from tqflow.compiler.python_tasks import TaskSignature
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import did_you_mean


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
                call.span,
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
            call.span,
            notes=(f"tasks in {module.path.name}: {', '.join(sorted(module.tasks)) or 'none'}",),
            help=hint,
        )
    return signature


def check_arguments(ctx: Context, call: ast.Call, signature: TaskSignature, fan_var: str | None) -> None:
    accepts_any = any(p.kind == "var_keyword" for p in signature.params)
    named = {p.name: p for p in signature.params if p.kind in ("positional_or_keyword", "keyword_only")}
    given: set[str] = set()
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
        if arg.name not in named and not accepts_any:
            ctx.error(
                "TQ0301",
                f"task `{signature.function}` has no parameter `{arg.name}`",
                arg.name_span,
                label="unknown argument",
                notes=(f"`{signature.function}` takes: {_describe(signature)}",),
                help=did_you_mean(arg.name, named),
            )
    missing = [p.name for p in named.values() if not p.has_default and p.name not in given]
    for name in missing:
        ctx.error(
            "TQ0302",
            f"missing argument `{name}` for task `{signature.function}`",
            call.span,
            notes=(f"`{signature.function}` takes: {_describe(signature)}",),
        )
    del fan_var  # the fan-out variable is an ordinary name inside the arguments


def _describe(signature: TaskSignature) -> str:
    parts = [
        f"{p.name}: {p.annotation}" if p.annotation else p.name
        for p in signature.params
        if p.kind in ("positional_or_keyword", "keyword_only")
    ]
    return "(" + ", ".join(parts) + ")"
