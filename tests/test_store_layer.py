"""The store layer's contract (issue 12): no module outside `runtime/store/` builds a Redis key or reads a
job's (or a run's) record by its hash fields.

Every module that can reach Redis (the runtime, the command lines, tqflow.testing, the stdlib; dsl,
compiler, plan and lsp cannot import the runtime, tests/test_layers.py) is read with `ast`:
- a key is built when a string puts a hash tag's brace in (`f"{{{ns}}}"`) or puts `:suffix` after a key
  or key part (`f"{keys.prefix}:stats"`, `f"{self.keys.dlq}:{name}"`, `prefix + ":x"`);
- a job or run record is read or written by its fields when a Redis hash command (HGET, HMGET, HGETALL,
  HSET …) is given `….job(…)` or `….run(…)`, the key of a job or a run (store/keys.py `Keys.job`, `Keys.run`).
Keys come from `Keys`/`ClusterKeys` (store/keys.py, store/cluster_keys.py), job records are read by
store/records.py and store/jobrows.py, run records by store/runrows.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "src" / "tqflow"
STORE = PACKAGE / "runtime" / "store"
# the layers that may import the runtime, hence reach Redis
SCANNED = ("runtime", "cli", "testing", "stdlib")
HASH_COMMANDS = {"hget", "hmget", "hgetall", "hset", "hsetnx", "hdel", "hexists", "hincrby", "hkeys", "hvals"}
# the Keys methods that name a record's hash: a job's, a run's
RECORDS = ("job", "run")
# what a key or a key part is called where it is held
KEY_WORDS = ("keys", "prefix", "control", "namespace", "key")


def _mentions_key(expr: ast.expr) -> bool:
    """`keys.prefix`, `self.keys.dlq`, `prefix`, `ns_key(x)`: an expression that names a key or key part."""
    text = ast.unparse(expr)
    names = {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(expr) if isinstance(n, ast.Attribute)}
    return any(w == n or n.endswith("_" + w) or n.startswith(w + "_") for n in names for w in KEY_WORDS) or (
        "keys." in text
    )


def _key_suffix(value: ast.expr) -> bool:
    """A literal piece that continues a key: `:word…` or `:` before a value, no space (a message's `: `
    is not)."""
    return (
        isinstance(value, ast.Constant)
        and isinstance(value.value, str)
        and value.value.startswith(":")
        and not value.value[1:2].isspace()
    )


def _fstring_key(node: ast.JoinedStr) -> str | None:
    """Why an f-string builds a key, or None."""
    parts = node.values
    for i, part in enumerate(parts):
        before = parts[i - 1] if i else None
        after = parts[i + 1] if i + 1 < len(parts) else None
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            # a literal brace against a value: a hash tag made by hand (`f"{{{ns}}}"`)
            if (part.value.endswith("{") and isinstance(after, ast.FormattedValue)) or (
                part.value.startswith("}") and isinstance(before, ast.FormattedValue)
            ):
                return "a hash tag built by hand"
        elif (
            isinstance(part, ast.FormattedValue)
            and after is not None
            and _key_suffix(after)
            and _mentions_key(part.value)
        ):
            return f"a key suffix after {ast.unparse(part.value)}"
    return None


def _is_brace(node: ast.expr, brace: str) -> bool:
    return isinstance(node, ast.Constant) and node.value == brace


def key_builds(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            why = _fstring_key(node)
            if why:
                found.append((node.lineno, why))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            if _key_suffix(node.right) and _mentions_key(node.left):
                found.append((node.lineno, f"a key suffix added to {ast.unparse(node.left)}"))
            elif _is_brace(node.left, "{") or _is_brace(node.right, "}"):
                found.append((node.lineno, "a hash tag built by hand"))
    return sorted(set(found))


def record_reads(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in HASH_COMMANDS
            and node.args
        ):
            key = node.args[0]
            if isinstance(key, ast.Call) and isinstance(key.func, ast.Attribute) and key.func.attr in RECORDS:
                what = f"{node.func.attr.upper()} of a {key.func.attr} record"
                found.append((node.lineno, f"{what} ({ast.unparse(node)[:80]})"))
    return found


def violations(source: str, module: str) -> list[str]:
    tree = ast.parse(source)
    out = [f"{module}:{line} builds a Redis key: {why}" for line, why in key_builds(tree)]
    return out + [f"{module}:{line} reads a record's fields: {why}" for line, why in record_reads(tree)]


def scanned_modules() -> list[Path]:
    paths = [p for layer in SCANNED for p in sorted((PACKAGE / layer).rglob("*.py"))]
    paths.append(PACKAGE / "__init__.py")
    return [p for p in paths if STORE not in p.parents]


def test_no_module_outside_the_store_builds_a_key_or_reads_a_job_record() -> None:
    problems: list[str] = []
    for path in scanned_modules():
        module = path.relative_to(PACKAGE.parent).as_posix()
        problems += violations(path.read_text(encoding="utf-8"), module)
    where = "runtime/store/ (Keys, records, jobrows, runrows)"
    assert not problems, f"move these into {where}:\n" + "\n".join(problems)


def test_the_scan_sees_the_whole_runtime_and_not_the_store() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in scanned_modules()}
    assert {
        "runtime/client.py",
        "runtime/worker/cancels.py",
        "cli/ops_commands.py",
        "testing/__init__.py",
    } <= names
    assert not any(n.startswith("runtime/store/") for n in names)


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ('key = f"{keys.prefix}:stats:jobs"', "builds a Redis key"),
        ('key = f"{self.keys.dlq}:{name}"', "builds a Redis key"),
        ('key = f"{{{namespace}}}:flows"', "builds a Redis key"),
        ('tag = "{" + namespace + "}"', "builds a Redis key"),
        ('key = prefix + ":tasks"', "builds a Redis key"),
        ('key = f"{ns_key}:x"', "builds a Redis key"),
        ('state = await redis.hget(keys.job(job_id), "state")', "of a job record"),
        ('pipe.hmget(self.context.keys.job(i), "state", "run")', "of a job record"),
        ("row = await self.redis.hgetall(part.keys.job(i))", "of a job record"),
        ('state = await redis.hget(keys.run(run_id), "state")', "of a run record"),
        ('pipe.hmget(self.keys.base.run(run_id), "flow", "version")', "of a run record"),
    ],
)
def test_a_violation_is_reported(source: str, what: str) -> None:
    found = violations(source, "tqflow/runtime/example.py")
    assert len(found) == 1 and what in found[0], found


@pytest.mark.parametrize(
    "source",
    [
        'message = f"job {job_id}: {state}"',  # a message, not a key
        'where = f"{host}:{port}"',  # an address
        "key = keys.stats_jobs",  # a key the store made
        "await redis.hgetall(keys.stats_jobs)",  # a hash that is not a job record
        'await redis.hget(keys.flow(name), "current")',  # a deployment's hash, not a job or run record
    ],
)
def test_what_is_not_a_violation(source: str) -> None:
    assert violations(source, "tqflow/runtime/example.py") == []
