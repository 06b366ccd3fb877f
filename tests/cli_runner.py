"""`tqc` run in the test's own process (click's test runner) instead of a new Python (about a second of
imports a call). For tests of what a command prints and exits with; tests about processes (signals, a
worker killed, the console script itself) still start real ones.

The commands call `asyncio.run`: from an async test, call `tqc` in a thread (`asyncio.to_thread`), so the
test's event loop (and its in-process workers) keep running meanwhile.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog
from click.testing import CliRunner

from tqflow.cli.tqc import cli

# The runner swaps sys.stdin/stdout/stderr for the whole process: one call at a time.
_ONE_AT_A_TIME = threading.Lock()


@dataclass(frozen=True)
class Ran:
    """What `subprocess.run(..., capture_output=True, text=True)` gives, for the same assertions."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def tqc(
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    path: Sequence[Path] = (),
) -> Ran:
    """`tqc ARGS`: its exit code, stdout and stderr. `env`: variables set for the call; `path`: folders
    its imports may need (what PYTHONPATH gives a process). A bug (an exception the command does not
    turn into a message) is raised here, with its traceback, rather than printed as an internal error."""
    with _ONE_AT_A_TIME, _logs_kept_out(), _on_path(path):
        result = CliRunner().invoke(cli, list(args), input=stdin, env=dict(env or {}), catch_exceptions=False)
    return Ran(tuple(args), result.exit_code, result.stdout, result.stderr)


def tqc_on(
    redis_url: str, namespace: str, *args: str, stdin: str | None = None, path: Sequence[Path] = ()
) -> Ran:
    """`tqc ARGS --redis URL --namespace NS`."""
    return tqc(*args, "--redis", redis_url, "--namespace", namespace, stdin=stdin, path=path)


@contextmanager
def _logs_kept_out() -> Iterator[None]:
    """The log lines of in-process workers logged during the call go to the real stderr, not into the
    command's captured output; a command that configures logging (`tqc run`) does not leave its
    set-up (a closed stream) behind."""
    saved = structlog.get_config()
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(file=sys.__stderr__))
    try:
        yield
    finally:
        structlog.reset_defaults()
        structlog.configure(**saved)


@contextmanager
def _on_path(folders: Sequence[Path]) -> Iterator[None]:
    added = [str(f) for f in folders if str(f) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for folder in added:
            sys.path.remove(folder)
