"""Pass helper: a signal job (`job NAME = signal TYPE { timeout D }`) lowered to a `JobPlan` whose
`signal` says what payload it waits for, as a `ValueType` the runtime checks without importing Python."""

from __future__ import annotations

from tqflow.compiler.context import Context
from tqflow.compiler.pytypes import PyTypes
from tqflow.compiler.types import BUILTIN, Ty
from tqflow.dsl import ast
from tqflow.plan.model import SIGNAL_TASK, SignalPlan, TaskRef, ValueType

SIGNAL_SETTINGS = ("timeout", "after")  # what a signal job may set; a task's settings mean nothing here
MAX_DEPTH = 8  # classes inside classes; deeper (or recursive) models take any object


def signal_task(ref: ast.TypeRef) -> TaskRef:
    """The TaskRef a signal job carries: no worker runs it (`SIGNAL_TASK`), the graph shows `signal T`."""
    return TaskRef(
        name=SIGNAL_TASK, module="tqflow.runtime.signals", function=f"signal {ref}", signature_hash=""
    )


def check_signal_settings(ctx: Context, job: ast.Job) -> tuple[ast.Setting, ...]:
    """The job's own settings that apply to a signal job; the others are reported (TQ0502)."""
    kept = []
    for setting in job.settings:
        if setting.kind in SIGNAL_SETTINGS:
            kept.append(setting)
            continue
        hint = {
            "when": "a signal job waits whatever its run's values; put the condition in `after`",
            "retry": "on timeout the job fails: handle it with a job `after NAME.failed`",
        }.get(setting.kind, "a signal job takes `timeout D` and `after COND`")
        ctx.error(
            "TQ0502",
            f"`{setting.kind}` does not apply to signal job `{job.name}` (it runs no task)",
            setting.span,
            help=hint,
        )
    return tuple(kept)


def register_imported_classes(ctx: Context, types: PyTypes) -> None:
    """Classes named by `use m.{X}`: their fields become known (as those of `use m` modules are)."""
    for name, qualified in ctx.imported_names.items():
        module, _, original = qualified.rpartition(".")
        info = types.module(module) if name[:1].isupper() else None
        if info is not None and original in info.classes:
            types.classes.setdefault(name, (info, info.classes[original]))


def signal_plan(types: PyTypes, ty: Ty, timeout_ms: int | None) -> SignalPlan:
    return SignalPlan(type=value_type(types, ty), timeout_ms=timeout_ms)


def value_type(types: PyTypes, ty: Ty, depth: int = 0) -> ValueType:
    """The runtime's description of a compiler type; what the compiler cannot know takes any JSON."""
    if ty.name == "Literal":
        return ValueType(name="Literal", values=list(ty.values), optional=ty.optional)
    if ty.base is not None:  # a NewType: its base's values
        base = value_type(types, ty.base, depth + 1)
        return base.model_copy(update={"optional": ty.optional or base.optional})
    if ty.name in ("list", "dict"):
        args = [value_type(types, a, depth + 1) for a in ty.args]
        return ValueType(name=ty.name, args=args, optional=ty.optional)
    if ty.name in BUILTIN:
        return ValueType(name=ty.name, optional=ty.optional)
    if ty.name == "Any":
        return ValueType(name="Json", optional=True)
    return _class(types, ty, depth)


def _class(types: PyTypes, ty: Ty, depth: int) -> ValueType:
    entry = types.classes.get(ty.name)
    qualname = f"{entry[0].name}.{ty.name}" if entry else None
    fields = types.fields(ty.name) if depth < MAX_DEPTH else None
    if fields is None:
        return ValueType(name=ty.name, optional=ty.optional, qualname=qualname)
    # attributes without an annotation (methods, plain class attributes) are no part of a payload
    annotated = types.annotated(ty.name)
    owned = {n: value_type(types, t, depth + 1) for n, t in fields.items() if n in annotated}
    required = sorted(types.required(ty.name) or set())
    return ValueType(name=ty.name, optional=ty.optional, fields=owned, required=required, qualname=qualname)
