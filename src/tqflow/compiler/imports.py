"""Pass: `import "other.tqflow" as x` compiles the other file and binds its named retry policies
(`retry x.db_flaky`), limiters (`limit x.api`) and flows (`x.nightly`, kept in the context for reuse)."""

from __future__ import annotations

from pathlib import Path

from tqflow.compiler.context import Context
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import did_you_mean
from tqflow.dsl.source import Source


def resolve_imports(ctx: Context) -> None:
    from tqflow.compiler import compile_source  # the compiler compiles imported files with itself

    here = str(Path(ctx.module.source.path).resolve())
    for imp in ctx.module.imports:
        if "\0" in imp.path:  # no file system takes it (Path.resolve raises ValueError, not OSError)
            ctx.error(
                "TQ0104",
                f"imported file `{imp.path!r}` cannot be read: its path holds a NUL character",
                imp.span,
            )
            ctx.unresolved.add(imp.alias)
            continue
        try:
            path = (ctx.module.source.directory / imp.path).resolve()
            if not _importable(ctx, imp, path, here):
                ctx.unresolved.add(imp.alias)  # its policies and limiters stay quiet where used
                continue
            source = Source.from_file(path)
        except OSError as err:  # a name too long for the file system, no permission …
            ctx.error("TQ0104", f"imported file `{imp.path}` cannot be read: {err.strerror or err}", imp.span)
            ctx.unresolved.add(imp.alias)
            continue
        result = compile_source(source, import_stack=(*ctx.import_stack, here))
        ctx.diagnostics.extend(result.diagnostics.items)
        if result.diagnostics.has_errors:
            ctx.error(
                "TQ0104",
                f"imported file `{imp.path}` has errors",
                imp.span,
                notes=(f"{len(result.diagnostics.errors)} error(s) in {imp.path}, reported for that file",),
            )
            ctx.unresolved.add(imp.alias)
            continue
        for name, policy in result.policies.items():
            ctx.imported_policies[f"{imp.alias}.{name}"] = policy
        for name, limiter in result.limiters.items():
            ctx.imported_limiters[f"{imp.alias}.{name}"] = limiter  # keeps the declaring file's name
        if result.plan is not None:
            for name, flow in result.plan.flows.items():
                ctx.imported_flows[f"{imp.alias}.{name}"] = flow
        for name, types in result.flow_types.items():
            ctx.flow_types[f"{imp.alias}.{name}"] = types  # `flow x.name(…)` jobs are checked against these


def resolve_flow_aliases(ctx: Context) -> None:
    """`flow nightly_eu = shared.nightly`: the imported flow's plan, under the new name."""
    for alias in ctx.module.flow_aliases:
        plan = ctx.imported_flows.get(alias.target)
        if plan is None:
            if alias.target.partition(".")[0] not in {i.alias for i in ctx.module.imports}:
                hint = 'import the file first: `import "other.tqflow" as x`, then `flow name = x.flow`'
            else:
                hint = did_you_mean(alias.target, ctx.imported_flows) or "it has no flow of that name"
            ctx.error("TQ0210", f"unknown imported flow `{alias.target}`", alias.span, help=hint)
            continue
        ctx.flow_plans.setdefault(alias.name, plan.model_copy(update={"name": alias.name}))


def _importable(ctx: Context, imp: ast.Import, path: Path, here: str) -> bool:
    if not path.is_file():
        ctx.error(
            "TQ0104",
            f"imported file `{imp.path}` not found",
            imp.span,
            notes=(f"looked for {path}",),
            help="paths are relative to the importing file",
        )
        return False
    if str(path) in (*ctx.import_stack, here):
        chain = " -> ".join(Path(p).name for p in (*ctx.import_stack, here, str(path)))
        ctx.error(
            "TQ0105", f"import cycle: {chain}", imp.span, help="move the shared policies to a third file"
        )
        return False
    if imp.alias in ctx.modules or any(i.alias == imp.alias for i in ctx.module.imports if i is not imp):
        ctx.error("TQ0103", f"`{imp.alias}` is bound twice", imp.span, help="use another name after `as`")
        return False
    return True
