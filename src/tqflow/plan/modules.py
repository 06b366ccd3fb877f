"""How a plan names Python modules: `std.http` is the project's stdlib, importable as `tqflow.stdlib.http`."""

from __future__ import annotations

STDLIB_PREFIX = "std."
STDLIB_PACKAGE = "tqflow.stdlib."


def resolve_module_name(name: str) -> str:
    """The importable name of a module a flow's `use` line names."""
    return STDLIB_PACKAGE + name[len(STDLIB_PREFIX) :] if name.startswith(STDLIB_PREFIX) else name
