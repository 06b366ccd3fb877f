"""Names in task annotations, resolved as a type checker would: aliases (`Rows = list[int]`,
`X: TypeAlias = …`), NewTypes, names imported from other modules (read with `ast` too, never run), and
the fields of pydantic models, dataclasses, TypedDicts and NamedTuples."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tqflow.compiler.python_tasks import ClassInfo, ModuleInfo, read_module
from tqflow.compiler.types import ANY, Ty, from_python

MAX_DEPTH = 8  # aliases of aliases of imports …; deeper (or circular) is taken as unknown
ROOT_BASES = {"BaseModel", "TypedDict", "NamedTuple", "object"}


@dataclass
class PyTypes:
    search: list[Path]
    modules: dict[str, ModuleInfo | None] = field(default_factory=dict)
    classes: dict[str, tuple[ModuleInfo, ClassInfo]] = field(default_factory=dict)
    # (module, annotation) -> its type: 5,000 jobs of one task read the same few annotations
    annotations: dict[tuple[str, str | None], Ty] = field(default_factory=dict)

    def add(self, info: ModuleInfo) -> None:
        self.modules.setdefault(info.name, info)

    def annotation(self, info: ModuleInfo, text: str | None) -> Ty:
        """The type of an annotation written in module `info`."""
        key = (info.name, text)
        if key not in self.annotations:
            self.annotations[key] = from_python(text, lambda name: self._lookup(info, name, 0))
        return self.annotations[key]

    def module(self, name: str) -> ModuleInfo | None:
        """A Python module read with `ast` (None when it cannot be found or read)."""
        return self._module(name)

    def required(self, class_name: str) -> set[str] | None:
        """The fields of a model or dataclass that have no default (None when its fields are not certain)."""
        fields = self.fields(class_name)
        entry = self.classes.get(class_name)
        if fields is None or entry is None:
            return None
        annotated, with_default = _declared(*entry)
        return set(fields) & (annotated - with_default)

    def annotated(self, class_name: str) -> set[str]:
        """A class's annotated fields (its bases' included): what a payload of it holds."""
        entry = self.classes.get(class_name)
        return _declared(*entry)[0] if entry else set()

    def _module(self, name: str) -> ModuleInfo | None:
        if name not in self.modules:
            try:
                self.modules[name] = read_module(name, self.search)
            except Exception:  # not found, unreadable, a syntax error: its names stay unknown
                self.modules[name] = None
        return self.modules[name]

    def _lookup(self, info: ModuleInfo, name: str, depth: int) -> Ty | None:
        if depth > MAX_DEPTH:
            return ANY
        if name in info.aliases:
            return from_python(info.aliases[name], lambda n: self._lookup(info, n, depth + 1))
        if name in info.newtypes:
            base = from_python(info.newtypes[name], lambda n: self._lookup(info, n, depth + 1))
            return Ty(name, base=base) if base.known else Ty(name)
        if name in info.classes:
            self.classes.setdefault(name, (info, info.classes[name]))
            return Ty(name)
        if name in info.imports:
            module, original = info.imports[name]
            other = self._module(module)
            if other is not None:
                return self._lookup(other, original, depth + 1)
        return None

    def fields(self, class_name: str) -> dict[str, Ty] | None:
        """The attributes of a model or dataclass seen in an annotation, with their types (methods and
        plain class attributes as Any); None when the set is not certain (unknown bases, not a model)."""
        return self._fields(class_name, 0)

    def _fields(self, class_name: str, depth: int) -> dict[str, Ty] | None:
        entry = self.classes.get(class_name)
        if entry is None or depth > MAX_DEPTH:
            return None
        info, cls = entry
        if not cls.closed:
            return None
        result: dict[str, Ty] = {}
        for base in cls.bases:
            if base in ROOT_BASES:
                continue
            if base not in info.classes:
                return None
            self.classes.setdefault(base, (info, info.classes[base]))
            inherited = self._fields(base, depth + 1)
            if inherited is None:
                return None
            result.update(inherited)
        result.update({name: ANY for name in cls.attributes})
        result.update({name: self.annotation(info, text) for name, text in cls.fields.items()})
        return result


def _declared(info: ModuleInfo, cls: ClassInfo, depth: int = 0) -> tuple[set[str], set[str]]:
    """A class's annotated fields and those with a default, its bases' included (a subclass's own win)."""
    annotated, with_default = set(cls.fields), set(cls.defaults)
    for base in cls.bases:
        if base in info.classes and depth < MAX_DEPTH:
            inherited, defaults = _declared(info, info.classes[base], depth + 1)
            with_default |= defaults - set(cls.fields)
            annotated |= inherited
    return annotated, with_default
