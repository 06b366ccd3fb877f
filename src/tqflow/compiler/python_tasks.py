"""Read the @task functions of a Python module with `ast`, without importing (running) user code."""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from tqflow.errors import LanguageError
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

    @functools.cached_property
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
class ClassInfo:
    """A class of a task module: its annotated fields (pydantic models, dataclasses, TypedDicts,
    NamedTuples) and other attributes (methods, properties); `closed` when every base is known, so a
    name that is none of these is certainly not an attribute."""

    fields: dict[str, str]  # name -> annotation text
    attributes: frozenset[str]
    bases: tuple[str, ...]
    closed: bool
    defaults: frozenset[str] = frozenset()  # fields given a default (`x: int = 0`): not required


@dataclass(frozen=True)
class ModuleInfo:
    name: str
    path: Path
    tasks: dict[str, TaskSignature]
    names: frozenset[str]  # every top-level name (classes, functions, assignments, imports)
    aliases: dict[str, str] = field(default_factory=dict)  # `Rows = list[int]`, `X: TypeAlias = …`
    newtypes: dict[str, str] = field(default_factory=dict)  # `UserId = NewType("UserId", int)` -> "int"
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)  # `from m import X as Y`: Y -> (m, X)


class ModuleNotFound(LanguageError):
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
            try:
                if candidate.is_file():
                    return candidate
            except OSError:  # a name too long for the file system, a folder we may not read …
                continue
    raise ModuleNotFound(name)


class ModuleUnreadable(LanguageError):
    """The module's file exists but cannot be read (permissions, an I/O error)."""


def decode_module(data: bytes, path: Path) -> str:
    """The text of a module's bytes, decoded as Python decodes a source file: a PEP 263 coding cookie
    (`# -*- coding: latin-1 -*-`) or a UTF-8 byte-order mark decides, else UTF-8; bytes that do not
    decode are a SyntaxError, as `python` itself reports them."""
    try:
        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        except SyntaxError:  # "invalid or missing encoding declaration": say which byte
            data.decode("utf-8")
            raise
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as err:
        if isinstance(err, UnicodeDecodeError):
            line = data.count(b"\n", 0, err.start) + 1
            message = (
                f"byte 0x{data[err.start]:02x} is not {err.encoding} (add a coding line or save as UTF-8)"
            )
            raise SyntaxError(message, (str(path), line, 0, "")) from err
        raise SyntaxError(f"unknown encoding: {err}", (str(path), 1, 0, "")) from err


def read_module(name: str, search: list[Path]) -> ModuleInfo:
    path = find_module_file(name, search)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ModuleUnreadable(f"{path}: {err.strerror or err}") from err
    tree = ast.parse(decode_module(data, path), filename=str(path))
    module_name = resolve_module_name(name)
    tasks: dict[str, TaskSignature] = {}
    names: set[str] = set()
    info = ModuleInfo(module_name, path, tasks, frozenset())
    package = module_name if path.name == "__init__.py" else module_name.rpartition(".")[0]
    for node in tree.body:
        names.update(_bound_names(node))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            decorator = _task_decorator(node)
            if decorator is not None:
                tasks[node.name] = _signature(module_name, node, decorator)
        elif isinstance(node, ast.ClassDef):
            info.classes[node.name] = _class_info(node)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node.module or "", node.level, package)
            for alias in node.names:
                info.imports[alias.asname or alias.name] = (source, alias.name)
        else:
            _type_definition(node, info)
    return ModuleInfo(
        module_name, path, tasks, frozenset(names), info.aliases, info.newtypes, info.classes, info.imports
    )


def _absolute(module: str, level: int, package: str) -> str:
    if not level:
        return module
    parts = package.split(".") if package else []
    base = parts[: len(parts) - (level - 1)] if level > 1 else parts
    return ".".join([*base, module] if module else base)


def _type_definition(node: ast.stmt, info: ModuleInfo) -> None:
    """Record `X = <type>`, `X: TypeAlias = <type>` and `X = NewType("X", <type>)`."""
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        target, value = node.targets[0].id, node.value
    elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
        if not ast.unparse(node.annotation).endswith("TypeAlias"):
            return
        target, value = node.target.id, node.value
    else:
        return
    if isinstance(value, ast.Call) and ast.unparse(value.func).endswith("NewType") and len(value.args) == 2:
        info.newtypes[target] = ast.unparse(value.args[1])
    elif _looks_like_type(value):
        info.aliases[target] = ast.unparse(value)


def _looks_like_type(node: ast.expr) -> bool:
    if isinstance(node, ast.Subscript):
        return _looks_like_type(node.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _looks_like_type(node.left) and _looks_like_type(node.right)
    if isinstance(node, ast.Constant):
        return node.value is None
    if isinstance(node, ast.Attribute):
        return True
    return isinstance(node, ast.Name) and (node.id[:1].isupper() or node.id in _BUILTIN_TYPES)


_BUILTIN_TYPES = {"int", "str", "float", "bool", "bytes", "list", "dict", "tuple", "set", "frozenset", "date"}
_OPEN_BASES = {"BaseModel", "object", "TypedDict", "NamedTuple", "Generic", "Protocol"}


def _class_info(node: ast.ClassDef) -> ClassInfo:
    fields: dict[str, str] = {}
    attributes: set[str] = set()
    defaults: set[str] = set()
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            fields[item.target.id] = ast.unparse(item.annotation)
            if item.value is not None:
                defaults.add(item.target.id)
        elif isinstance(item, ast.Assign):
            attributes.update(t.id for t in item.targets if isinstance(t, ast.Name))
        elif isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            attributes.add(item.name)
    bases = tuple(ast.unparse(b).rpartition(".")[2] for b in node.bases)
    decorated = any(
        ast.unparse(d).split("(")[0].rpartition(".")[2] in ("dataclass", "define", "frozen")
        for d in node.decorator_list
    )
    modelled = decorated or any(b in ("BaseModel", "TypedDict", "NamedTuple") for b in bases)
    # Only a model or dataclass has a known set of fields; its bases must be known too (checked later).
    closed = modelled and not node.keywords
    return ClassInfo(fields, frozenset(attributes), bases, closed, frozenset(defaults))


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
