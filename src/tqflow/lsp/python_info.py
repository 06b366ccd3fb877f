"""What the editor shows of a task module: a function's header, docstring and where its name and
parameters are, and the fields of its classes. Read with `ast` like the compiler does; user code is
never imported (or run)."""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

Position = tuple[int, int]  # 1-based line, 1-based column (characters)


@dataclass(frozen=True)
class PyFunction:
    name: str
    position: Position  # of the function's name in `def name`
    header: str  # decorators and `def name(…) -> T`, as Python source
    docstring: str | None
    params: dict[str, Position]
    returns: str | None
    returned_keys: tuple[str, ...] = ()  # the keys of the dict literals it returns, if it returns only those


@dataclass(frozen=True)
class PyClass:
    name: str
    position: Position
    fields: dict[str, tuple[Position, str | None]]  # annotated class attributes: position, annotation
    docstring: str | None = None


@dataclass(frozen=True)
class PyModule:
    path: Path
    text: str = ""
    functions: dict[str, PyFunction] = field(default_factory=dict)
    classes: dict[str, PyClass] = field(default_factory=dict)


_cache: dict[Path, tuple[tuple[int, int], PyModule]] = {}


def read_python(path: Path) -> PyModule | None:
    """The functions and classes at the top level of the file (None if it cannot be read or parsed)."""
    try:
        stat = path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        cached = _cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError, RecursionError):
        return None
    lines = text.splitlines()
    module = PyModule(path, text)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            module.functions[node.name] = _function(node, lines)
        elif isinstance(node, ast.ClassDef):
            module.classes[node.name] = _class(node, lines)
    _cache[path] = (key, module)
    return module


def _column(lines: list[str], line: int, byte_offset: int) -> int:
    """`ast` counts columns in UTF-8 bytes; the editor wants characters."""
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    return len(text.encode("utf-8")[:byte_offset].decode("utf-8", "replace")) + 1


def _name_position(lines: list[str], line: int, keyword: str, name: str) -> Position:
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    found = re.search(rf"\b{keyword}\s+({re.escape(name)})\b", text)
    return (line, found.start(1) + 1 if found else 1)


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> PyFunction:
    bare = copy.copy(node)
    bare.body = [ast.Expr(ast.Constant(...))]
    header = ast.unparse(bare).rsplit(":", 1)[0]
    args = node.args
    params = {
        a.arg: (a.lineno, _column(lines, a.lineno, a.col_offset))
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        if a is not None
    }
    return PyFunction(
        name=node.name,
        position=_name_position(lines, node.lineno, "def", node.name),
        header=header,
        docstring=ast.get_docstring(node),
        params=params,
        returns=ast.unparse(node.returns) if node.returns is not None else None,
        returned_keys=_returned_keys(node),
    )


def _returned_keys(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[str, ...]:
    keys: dict[str, None] = {}
    returns = [n for n in ast.walk(node) if isinstance(n, ast.Return) and n.value is not None]
    for ret in returns:
        if not isinstance(ret.value, ast.Dict):
            return ()
        for key in ret.value.keys:
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                keys[key.value] = None
    return tuple(keys)


def _class(node: ast.ClassDef, lines: list[str]) -> PyClass:
    fields: dict[str, tuple[Position, str | None]] = {}
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            annotation = ast.unparse(item.annotation)
            if annotation.startswith(("ClassVar", "typing.ClassVar")):
                continue
            position = (item.lineno, _column(lines, item.lineno, item.target.col_offset))
            fields[item.target.id] = (position, annotation)
    return PyClass(
        name=node.name,
        position=_name_position(lines, node.lineno, "class", node.name),
        fields=fields,
        docstring=ast.get_docstring(node),
    )


def class_name(annotation: str | None) -> str | None:
    """The class an annotation names, with `| None` and `Optional[…]` removed: `Order | None` → Order."""
    if not annotation:
        return None
    try:
        node = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return None
    while True:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            sides = [s for s in (node.left, node.right) if not _is_none(s)]
            if len(sides) != 1:
                return None
            node = sides[0]
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) in ("Optional", "typing.Optional"):
            node = node.slice
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):  # a string annotation
            return class_name(node.value)
        else:
            break
    return node.id if isinstance(node, ast.Name) else None


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None
