"""Static types of expressions, parameters and task annotations, and when one may feed another.

Types are deliberately forgiving: anything the compiler cannot know (an opaque class from a task module,
a union, `Any`) is compatible with everything, so a type error is only reported when both sides are
built-in types that certainly do not fit (a `Str` into an `int` parameter, a list into a `date`).
"""

from __future__ import annotations

import ast as pyast
import datetime as dt
from dataclasses import dataclass

from tqflow.dsl import ast

BUILTIN = ("Str", "Int", "Float", "Bool", "Date", "DateTime", "Duration", "Decimal", "Bytes", "None")
CONTAINERS = ("list", "dict")
DECLARABLE = ("Str", "Int", "Float", "Bool", "Date", "DateTime", "Duration", "Decimal", "Json")


@dataclass(frozen=True)
class Ty:
    name: str  # a BUILTIN name, "list", "dict", "Any", or an opaque class name from a task module
    args: tuple[Ty, ...] = ()
    optional: bool = False

    def __str__(self) -> str:
        inner = f"[{', '.join(str(a) for a in self.args)}]" if self.args else ""
        return f"{self.name}{inner}{'?' if self.optional else ''}"

    @property
    def known(self) -> bool:
        """Built-in or a container: the compiler knows what values of this type look like."""
        return self.name in BUILTIN or self.name in CONTAINERS

    def element(self) -> Ty:
        return self.args[0] if self.name == "list" and self.args else ANY


ANY = Ty("Any")
STR, INT, FLOAT, BOOL = Ty("Str"), Ty("Int"), Ty("Float"), Ty("Bool")
DATE, DATETIME, DURATION, NONE = Ty("Date"), Ty("DateTime"), Ty("Duration"), Ty("None")

_PY_NAMES = {
    "int": INT,
    "str": STR,
    "float": FLOAT,
    "bool": BOOL,
    "date": DATE,
    "datetime": DATETIME,
    "timedelta": DURATION,
    "Decimal": Ty("Decimal"),
    "bytes": Ty("Bytes"),
    "None": NONE,
    "NoneType": NONE,
    "Any": ANY,
    "object": ANY,
}
_PY_LISTS = {"list", "List", "Sequence", "Iterable", "tuple", "Tuple", "set", "Set", "frozenset"}
_PY_DICTS = {"dict", "Dict", "Mapping", "MutableMapping"}


def list_of(item: Ty) -> Ty:
    return Ty("list", (item,))


def from_python(annotation: str | None) -> Ty:
    """The type of a Python annotation read as text (`list[int]`, `Optional[date]`, `Order | None`)."""
    if not annotation:
        return ANY
    try:
        node = pyast.parse(annotation, mode="eval").body
    except SyntaxError:
        return ANY
    return _from_node(node)


def _from_node(node: pyast.expr) -> Ty:
    match node:
        case pyast.Constant(value=None):
            return NONE
        case pyast.Constant(value=str(text)):
            return from_python(text)
        case pyast.Name(id=name) | pyast.Attribute(attr=name):
            if name in _PY_LISTS:
                return list_of(ANY)
            if name in _PY_DICTS:
                return Ty("dict", (STR, ANY))
            return _PY_NAMES.get(name, Ty(name) if name[:1].isupper() else ANY)
        case pyast.BinOp(op=pyast.BitOr()):
            return _union([*_flatten_union(node)])
        case pyast.Subscript(value=base, slice=index):
            return _subscript(_base_name(base), index)
    return ANY


def _base_name(node: pyast.expr) -> str:
    return node.attr if isinstance(node, pyast.Attribute) else node.id if isinstance(node, pyast.Name) else ""


def _subscript(base: str, index: pyast.expr) -> Ty:
    items = list(index.elts) if isinstance(index, pyast.Tuple) else [index]
    if base in _PY_LISTS:
        return list_of(_from_node(items[0]))
    if base in _PY_DICTS and len(items) == 2:
        return Ty("dict", (_from_node(items[0]), _from_node(items[1])))
    if base == "Optional":
        inner = _from_node(items[0])
        return Ty(inner.name, inner.args, optional=True)
    if base == "Union":
        return _union(items)
    if base == "Annotated":
        return _from_node(items[0])
    return ANY


def _flatten_union(node: pyast.expr) -> list[pyast.expr]:
    if isinstance(node, pyast.BinOp) and isinstance(node.op, pyast.BitOr):
        return [*_flatten_union(node.left), *_flatten_union(node.right)]
    return [node]


def _union(items: list[pyast.expr]) -> Ty:
    types = [_from_node(i) for i in items]
    rest = [t for t in types if t != NONE]
    if len(rest) != 1:
        return ANY  # a real union: the compiler does not try to decide which member a value is
    only = rest[0]
    return Ty(only.name, only.args, optional=len(rest) != len(types) or only.optional)


def from_declared(ref: ast.TypeRef) -> Ty | None:
    """The type of a declared parameter type (`Date`, `list[Int]`, `Str?`); None if the name is unknown."""
    if ref.name == "Json":
        base: Ty | None = ANY
    elif ref.name in DECLARABLE:
        base = Ty(ref.name)
    elif ref.name.lower() in CONTAINERS:
        args = tuple(from_declared(a) or ANY for a in ref.args)
        base = Ty(ref.name.lower(), args or ((ANY,) if ref.name.lower() == "list" else (STR, ANY)))
    elif ref.name[:1].isupper():
        base = Ty(ref.name)  # a class named in a task module: opaque
    else:
        base = None
    if base is None:
        return None
    return Ty(base.name, base.args, optional=ref.optional)


def assignable(value: Ty, target: Ty) -> bool:
    """Whether a value of type `value` may be passed where `target` is expected."""
    if value == ANY or target == ANY or not value.known or not target.known:
        return True
    if value.name == "None":
        return target.optional or target.name == "None"
    if value.name == target.name:
        return all(assignable(a, b) for a, b in zip(value.args, target.args, strict=False))
    widening = {("Int", "Float"), ("Int", "Decimal"), ("Float", "Decimal")}
    return (value.name, target.name) in widening


def literal_fits(expr: ast.Expr, target: Ty) -> bool:
    """A string literal in ISO form is accepted for a date or date-time (how JSON carries them)."""
    if not (isinstance(expr, ast.Literal) and expr.kind == "str"):
        return False
    parser = {"Date": dt.date.fromisoformat, "DateTime": dt.datetime.fromisoformat}.get(target.name)
    if parser is None:
        return False
    try:
        parser(str(expr.value))
    except ValueError:
        return False
    return True
