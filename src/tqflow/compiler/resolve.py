"""Pass: bind `use` lines to Python modules, collect named retry policies, flag duplicate names."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqflow.compiler.context import Context
from tqflow.compiler.python_tasks import ModuleInfo, ModuleNotFound, ModuleUnreadable, read_module
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import Label, did_you_mean
from tqflow.dsl.source import Span


def resolve_uses(ctx: Context) -> None:
    search = [ctx.module.source.directory]
    for use in ctx.module.uses:
        try:
            info = read_module(use.module, search)
        except ModuleNotFound:
            ctx.error(
                "TQ0101",
                f"module `{use.module}` not found",
                use.span,
                label="no such module next to the file or on the Python path",
                notes=(f"searched {search[0]} and the Python path",),
                help=did_you_mean(use.module, _nearby_modules(search[0], use.module)),
            )
        except SyntaxError as err:
            line = f" (line {err.lineno})" if err.lineno else ""
            ctx.error(
                "TQ0101",
                f"module `{use.module}` has a Python syntax error: {err.msg}{line}",
                use.span,
            )
        except ModuleUnreadable as err:
            ctx.error("TQ0101", f"module `{use.module}` cannot be read: {err}", use.span)
        except (RecursionError, MemoryError, ValueError):
            ctx.error("TQ0101", f"module `{use.module}` is too large or too deeply nested to read", use.span)
        else:
            _bind(ctx, use, info)
            continue
        ctx.unresolved.update(use.names or (use.bound_name,))  # later uses of these names stay quiet


def _nearby_modules(folder: Path, wanted: str) -> list[str]:
    """Module names next to the file, and the stdlib's `std.*`, as did-you-mean candidates."""
    parent = folder.joinpath(*wanted.split(".")[:-1])
    prefix = wanted.rpartition(".")[0]
    names = [p.stem for p in parent.glob("*.py")] + [p.parent.name for p in parent.glob("*/__init__.py")]
    stdlib = Path(__file__).resolve().parent.parent / "stdlib"
    names += [f"std.{p.stem}" for p in stdlib.glob("*.py") if p.stem != "__init__"]
    return [f"{prefix}.{n}" if prefix and not n.startswith("std.") else n for n in names]


def _bind(ctx: Context, use: ast.Use, info: ModuleInfo) -> None:
    if not use.names:
        _bind_unique(ctx, ctx.modules, use.bound_name, info, use)
        return
    for name in use.names:
        if name not in info.names:
            ctx.error(
                "TQ0102",
                f"`{use.module}` has no top-level name `{name}`",
                use.span,
                help=did_you_mean(name, info.names),
            )
            ctx.unresolved.add(name)
        else:
            _bind_unique(ctx, ctx.imported_names, name, f"{info.name}.{name}", use)


def _bind_unique(ctx: Context, table: dict[str, Any], name: str, value: object, node: ast.Node) -> None:
    if name in table or name in ctx.modules or name in ctx.imported_names:
        ctx.error("TQ0103", f"`{name}` is bound twice by `use`", node.span, help="add `as OTHER_NAME`")
        return
    table[name] = value


def collect_policies(ctx: Context) -> None:
    for decl in ctx.module.retries:
        if decl.name in ctx.policies:
            ctx.error(
                "TQ0103",
                f"retry policy `{decl.name}` is declared twice",
                decl.span,
                labels=(_label(ctx.policies[decl.name].span, "first declared here"),),
            )
            continue
        ctx.policies[decl.name] = decl


def lower_policies(ctx: Context) -> None:
    from tqflow.compiler.retry import lower_retry

    for name, decl in ctx.policies.items():
        if name not in ctx.policy_plans:
            ctx.policy_plans[name] = lower_retry(ctx, decl.spec, frozenset({name}))


def check_duplicates(ctx: Context) -> None:
    flows: list[ast.Flow | ast.FlowAlias] = [*ctx.module.flows, *ctx.module.flow_aliases]
    _duplicates(ctx, ((f.name, f.name_span) for f in flows), "flow")
    for flow in ctx.module.flows:
        _duplicates(ctx, ((j.name, j.name_span) for j in flow.jobs), "job", flow.name)
        _duplicates(ctx, ((p.name, p.span) for p in flow.params), "parameter", flow.name)
        _duplicates(ctx, ((o.name, o.span) for o in flow.outputs), "output", flow.name)


def _duplicates(
    ctx: Context, named: Iterable[tuple[str, object]], kind: str, flow: str | None = None
) -> None:
    seen: dict[str, object] = {}
    where = f" in flow `{flow}`" if flow else ""
    for name, span in named:
        if name in seen:
            assert isinstance(span, Span)
            ctx.error(
                "TQ0103",
                f"{kind} `{name}` is declared twice{where}",
                span,
                labels=(_label(seen[name], "first declared here"),),
            )
        else:
            seen[name] = span


def _label(span: object, message: str) -> Label:
    assert isinstance(span, Span)
    return Label(span, message)
