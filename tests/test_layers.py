"""The import contract: dsl → compiler → plan ← runtime ← stdlib, the command lines on top.

Every `import` and `from … import` in the package (top level, in functions, under TYPE_CHECKING alike)
is read with `ast`, so a lazy import inside a function cannot hide a broken rule."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "src" / "tqflow"

# Which layers each layer may import (itself included). `plan` is the contract at the bottom; `errors` (the
# error tree, tqflow/errors.py) sits beside it and imports nothing of tqflow's, so every layer may raise
# its errors.
LAYERS: dict[str, set[str]] = {
    "errors": set(),
    "plan": set(),
    "dsl": {"plan"},
    "compiler": {"dsl", "plan"},
    "runtime": {"plan"},
    "stdlib": {"runtime", "plan"},
    "testing": {"runtime", "plan", "compiler", "dsl"},
    "lsp": {"compiler", "dsl", "plan"},
    "cli": {"compiler", "dsl", "plan", "runtime", "stdlib", "lsp"},
    "": {"plan"},  # tqflow/__init__.py
}
ALLOWED: dict[str, set[str]] = {
    layer: {layer, *below} | ({"errors"} if layer != "errors" else set()) for layer, below in LAYERS.items()
}


def layer_of(module: str) -> str | None:
    """`tqflow.runtime.worker` → `runtime`; a module outside tqflow → None."""
    parts = module.split(".")
    if parts[0] != "tqflow":
        return None
    return parts[1] if len(parts) > 1 else ""


def imported_modules(tree: ast.AST, module: str) -> list[tuple[str, int]]:
    """Every module an AST imports, with the line, relative imports resolved against `module`."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: -node.level]
                base = ".".join([*parent, base]) if base else ".".join(parent)
            found.append((base, node.lineno))
    return found


def violations(source: str, module: str) -> list[str]:
    """The imports in `source` (the text of `module`) that the contract forbids."""
    own = layer_of(module)
    assert own is not None and own in ALLOWED, f"{module} is in no known layer; add it to ALLOWED"
    bad = []
    for target, line in imported_modules(ast.parse(source), module):
        other = layer_of(target)
        if other is not None and other not in ALLOWED[own]:
            bad.append(f"{module}:{line} imports {target} ({own or 'tqflow'} may not import {other})")
    return bad


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_every_module_keeps_the_contract() -> None:
    problems: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        problems += violations(path.read_text(encoding="utf-8"), module_name(path))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("tqflow.runtime.worker", "from tqflow.dsl.parser import parse\n"),
        ("tqflow.runtime.worker", "def f():\n    import tqflow.compiler.lower\n"),
        ("tqflow.plan.model", "from tqflow.runtime import task\n"),
        ("tqflow.dsl.parser", "from ..compiler import compile_file\n"),
        ("tqflow.compiler.lower", "from tqflow.runtime.store.keys import Keys\n"),
    ],
)
def test_a_broken_rule_is_reported(module: str, source: str) -> None:
    assert violations(source, module), f"{source!r} in {module} should break the contract"


def test_allowed_imports_pass() -> None:
    assert not violations("from tqflow.plan import Plan\nfrom . import keys\n", "tqflow.runtime.worker")
    assert not violations("from tqflow.errors import PlanError\n", "tqflow.plan.model")


# Each Python a user (or a test) starts pays for what it imports: a worker process does not load the API
# (FastAPI, uvicorn), the language server (pygls) or the compiler (lark), and `tqrun` loads the API only for
# `tqrun api` (it imports it in that command). One process checks both, in the order a worker starts.
NOT_IMPORTED = {
    "tqflow.runtime.worker": [
        "fastapi",
        "starlette",
        "uvicorn",
        "pygls",
        "lsprotocol",
        "lark",
        "tqflow.compiler",
    ],
    "tqflow.cli.tqrun": ["fastapi", "starlette", "uvicorn", "pygls", "lsprotocol", "tqflow.runtime.api"],
}
REPORT_IMPORTED = """\
import json, sys
found = {}
for module, heavy in json.loads(sys.argv[1]).items():
    __import__(module)
    found[module] = [name for name in heavy if name in sys.modules]
print(json.dumps(found))
"""


def test_a_worker_and_tqrun_import_no_stack_they_do_not_run() -> None:
    done = subprocess.run(
        [sys.executable, "-c", REPORT_IMPORTED, json.dumps(NOT_IMPORTED)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {module: [] for module in NOT_IMPORTED}, done.stdout
