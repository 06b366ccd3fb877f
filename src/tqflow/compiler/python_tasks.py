"""Read the @task functions of a Python module with `ast`, without importing (running) user code."""

from __future__ import annotations

import ast
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tqflow.plan.modules import resolve_module_name

TASK_DECORATORS = {"task", "tqflow.runtime.task", "runtime.task"}


@dataclass(frozen=True)
class TaskParam:
    name: str
    annotation: str | None
    has_default: bool
    kind: str  # positional_or_keyword | keyword_only | positional_only | var_positional | var_keyword


@dataclass(frozen=True)
class Unevaluated:
    """A @task(...) option that is not a literal (`queue=EMAILS`, `retry=fixed("1s")`): its source text."""

    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class TaskSignature:
    module: str
    function: str
    name: str  # registry name, "module.function" unless @task(name=...)
    params: tuple[TaskParam, ...]
    returns: str | None
    is_async: bool
    line: int
    options: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def hash(self) -> str:
        text = ";".join(
            [
                self.name,
                *(f"{p.name}:{p.annotation}:{p.has_default}:{p.kind}" for p in self.params),
                f"->{self.returns}",
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ModuleInfo:
    name: str
    path: Path
    tasks: dict[str, TaskSignature]
    names: frozenset[str]  # every top-level name (classes, functions, assignments, imports)


class ModuleNotFound(Exception):
    pass


def find_module_file(name: str, search: list[Path]) -> Path:
    """The file that `import name` would load, looked for in `search` then on sys.path."""
    name = resolve_module_name(name)
    parts = name.split(".")
    roots = [*search, *(Path(p) for p in sys.path if p)]
    if name.startswith("tqflow."):
        roots.insert(0, Path(__file__).resolve().parent.parent)
        parts = ["stdlib", *parts[2:]] if name.startswith("tqflow.stdlib.") else parts
    for root in roots:
        base = root.joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    raise ModuleNotFound(name)


def read_module(name: str, search: list[Path]) -> ModuleInfo:
    path = find_module_file(name, search)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module_name = resolve_module_name(name)
    tasks: dict[str, TaskSignature] = {}
    names: set[str] = set()
    for node in tree.body:
        names.update(_bound_names(node))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            decorator = _task_decorator(node)
            if decorator is not None:
                tasks[node.name] = _signature(module_name, node, decorator)
    return ModuleInfo(module_name, path, tasks, frozenset(names))


def _bound_names(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    return set()


def _task_decorator(node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.expr | None:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if ast.unparse(target) in TASK_DECORATORS:
            return decorator
    return None


def _signature(
    module: str, node: ast.FunctionDef | ast.AsyncFunctionDef, decorator: ast.expr
) -> TaskSignature:
    args = node.args
    params: list[TaskParam] = []
    positional = [*args.posonlyargs, *args.args]
    first_default = len(positional) - len(args.defaults)
    for i, a in enumerate(positional):
        kind = "positional_only" if i < len(args.posonlyargs) else "positional_or_keyword"
        params.append(TaskParam(a.arg, _annotation(a.annotation), i >= first_default, kind))
    if args.vararg:
        params.append(TaskParam(args.vararg.arg, _annotation(args.vararg.annotation), True, "var_positional"))
    for a, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        params.append(TaskParam(a.arg, _annotation(a.annotation), default is not None, "keyword_only"))
    if args.kwarg:
        params.append(TaskParam(args.kwarg.arg, _annotation(args.kwarg.annotation), True, "var_keyword"))
    options: dict[str, object] = {}
    if isinstance(decorator, ast.Call):
        for kw in decorator.keywords:
            if kw.arg is not None:
                try:
                    options[kw.arg] = ast.literal_eval(kw.value)
                except ValueError:  # not a literal (a name, a call): kept as its source text
                    options[kw.arg] = Unevaluated(ast.unparse(kw.value))
    name = options.get("name")
    return TaskSignature(
        module=module,
        function=node.name,
        name=name if isinstance(name, str) else f"{module}.{node.name}",
        params=tuple(params),
        returns=_annotation(node.returns),
        is_async=isinstance(node, ast.AsyncFunctionDef),
        line=node.lineno,
        options=options,
    )


def _annotation(node: ast.expr | None) -> str | None:
    return ast.unparse(node) if node is not None else None
