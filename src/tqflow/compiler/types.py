"""Static types of expressions, parameters and task annotations, and when one may feed another.

Types are deliberately forgiving: anything the compiler cannot know (an opaque class from a task module,
a union, `Any`) is compatible with everything, so a type error is only reported when both sides are
built-in types that certainly do not fit (a `Str` into an `int` parameter, a list into a `date`).
"""

from __future__ import annotations

import ast as pyast
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from tqflow.dsl import ast

BUILTIN = ("Str", "Int", "Float", "Bool", "Date", "DateTime", "Duration", "Decimal", "Bytes", "None")
CONTAINERS = ("list", "dict")
DECLARABLE = ("Str", "Int", "Float", "Bool", "Date", "DateTime", "Duration", "Decimal", "Json")


@dataclass(frozen=True)
class Ty:
    name: str  # a BUILTIN name, "list", "dict", "Any", "Literal", or a class / NewType name
    args: tuple[Ty, ...] = ()
    optional: bool = False
    base: Ty | None = None  # a NewType's base type; a Literal's value type
    values: tuple[object, ...] = ()  # a Literal's values

    def __str__(self) -> str:
        if self.name == "Literal":
            inner = f"[{', '.join(repr(v) for v in self.values)}]"
        else:
            inner = f"[{', '.join(str(a) for a in self.args)}]" if self.args else ""
        return f"{self.name}{inner}{'?' if self.optional else ''}"

    @property
    def known(self) -> bool:
        """Built-in, a container, a Literal or a NewType: the compiler knows what values look like."""
        return self.name in BUILTIN or self.name in CONTAINERS or self.base is not None

    def required(self) -> Ty:
        """The type without `?`."""
        return Ty(self.name, self.args, False, self.base, self.values) if self.optional else self

    def element(self) -> Ty:
        return self.args[0] if self.name == "list" and self.args else ANY


@dataclass(frozen=True)
class FlowTypes:
    """What a caller of a flow (a sub-flow job) needs: its parameters' types, which of them have no
    default, and its outputs' types."""

    params: dict[str, Ty]
    required: frozenset[str]
    outputs: dict[str, Ty]


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


Resolver = Callable[[str], "Ty | None"]  # a name in a task module (alias, NewType, import) -> its type


def from_python(annotation: str | None, resolve: Resolver | None = None) -> Ty:
    """The type of a Python annotation read as text (`list[int]`, `Optional[date]`, `Order | None`);
    `resolve` looks up the names the task's module defines or imports (aliases, NewTypes)."""
    if not annotation:
        return ANY
    try:
        node = pyast.parse(annotation, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return ANY
    return _from_node(node, resolve)


def _from_node(node: pyast.expr, resolve: Resolver | None) -> Ty:
    match node:
        case pyast.Constant(value=None):
            return NONE
        case pyast.Constant(value=str(text)):
            return from_python(text, resolve)
        case pyast.Name(id=name) | pyast.Attribute(attr=name):
            if name in _PY_LISTS:
                return list_of(ANY)
            if name in _PY_DICTS:
                return Ty("dict", (STR, ANY))
            if name in _PY_NAMES:
                return _PY_NAMES[name]
            found = resolve(name) if resolve is not None else None
            if found is not None:
                return found
            return Ty(name) if name[:1].isupper() else ANY
        case pyast.BinOp(op=pyast.BitOr()):
            return _union([*_flatten_union(node)], resolve)
        case pyast.Subscript(value=base, slice=index):
            return _subscript(_base_name(base), index, resolve)
    return ANY


def _base_name(node: pyast.expr) -> str:
    return node.attr if isinstance(node, pyast.Attribute) else node.id if isinstance(node, pyast.Name) else ""


def _subscript(base: str, index: pyast.expr, resolve: Resolver | None) -> Ty:
    items = list(index.elts) if isinstance(index, pyast.Tuple) else [index]
    if base in ("tuple", "Tuple") and len(items) == 2 and isinstance(items[1], pyast.Constant):
        return list_of(_from_node(items[0], resolve))  # tuple[int, ...]
    if base in ("tuple", "Tuple"):
        return list_of(ANY)
    if base in _PY_LISTS:
        return list_of(_from_node(items[0], resolve))
    if base in _PY_DICTS and len(items) == 2:
        return Ty("dict", (_from_node(items[0], resolve), _from_node(items[1], resolve)))
    if base == "Optional":
        return _optional(_from_node(items[0], resolve))
    if base == "Union":
        return _union(items, resolve)
    if base == "Annotated":
        return _from_node(items[0], resolve)
    if base == "Literal":
        values = tuple(i.value for i in items if isinstance(i, pyast.Constant))
        kinds = {type(v) for v in values}
        if len(values) != len(items) or len(kinds) != 1 or kinds - {str, int, bool}:
            return ANY
        value_type = {str: STR, int: INT, bool: BOOL}[kinds.pop()]
        return Ty("Literal", base=value_type, values=values)
    return ANY


def _optional(ty: Ty) -> Ty:
    return Ty(ty.name, ty.args, True, ty.base, ty.values)


def _flatten_union(node: pyast.expr) -> list[pyast.expr]:
    if isinstance(node, pyast.BinOp) and isinstance(node.op, pyast.BitOr):
        return [*_flatten_union(node.left), *_flatten_union(node.right)]
    return [node]


def _union(items: list[pyast.expr], resolve: Resolver | None) -> Ty:
    types = [_from_node(i, resolve) for i in items]
    rest = [t for t in types if t != NONE]
    if len(rest) != 1:
        return ANY  # a real union: the compiler does not try to decide which member a value is
    only = rest[0]
    return _optional(only) if len(rest) != len(types) or only.optional else only


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
    """Whether a value of type `value` may be passed where `target` is expected (as mypy decides,
    except that an Int fits a Decimal and a container's items widen, as JSON values do)."""
    if value.name == "Any" or target.name == "Any":
        return True
    if value.name == "None":
        return target.optional or target.name == "None"
    if value.optional and not target.optional:
        return False  # `Int?` or `-> int | None` where a value is required: it may be none
    value, target = value.required(), target.required()
    if target.name == "Literal":
        if value.name == "Literal":
            return set(value.values) <= set(target.values) and value.base == target.base
        return not value.known
    if value.name == "Literal" and value.base is not None:
        return assignable(value.base, target)
    if target.base is not None:  # a NewType takes only itself (or what the compiler cannot see)
        return value.name == target.name or not value.known
    if value.base is not None:  # a NewType is also its base
        return value.name == target.name or assignable(value.base, target)
    if not value.known or not target.known:
        return True
    if value.name == target.name:
        return all(assignable(a, b) for a, b in zip(value.args, target.args, strict=False))
    widening = {("Int", "Float"), ("Int", "Decimal"), ("Float", "Decimal")}
    return (value.name, target.name) in widening


def comparable(left: Ty, right: Ty) -> bool:
    """Whether `==` between the two can ever be true (mypy's strict equality)."""
    left, right = left.required(), right.required()
    if "None" in (left.name, right.name):
        return True
    numbers = {"Int", "Float", "Decimal", "Bool"}
    if _plain(left).name in numbers and _plain(right).name in numbers:
        return True
    return assignable(left, right) or assignable(right, left)


def orderable(left: Ty, right: Ty) -> bool:
    """Whether `<`, `<=`, `>`, `>=` are defined between the two."""
    left, right = _plain(left.required()), _plain(right.required())
    if not (left.known and right.known):
        return True
    numbers = {"Int", "Float", "Decimal", "Bool"}
    if left.name in numbers and right.name in numbers:
        return True
    return left.name == right.name and left.name in ("Str", "Date", "DateTime", "Duration", "list")


def _plain(ty: Ty) -> Ty:
    """A Literal or NewType as its base type."""
    return ty.base if ty.base is not None else ty


def literal_value_fits(expr: ast.Expr, target: Ty) -> bool | None:
    """For a Literal[...] target and a literal expression: whether it is one of the values (None when
    this rule does not apply)."""
    target = target.required()
    if (
        target.name != "Literal"
        or not isinstance(expr, ast.Literal)
        or expr.kind not in ("str", "int", "bool")
    ):
        return None
    return any(type(v) is type(expr.value) and v == expr.value for v in target.values)


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
