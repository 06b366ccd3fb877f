"""`use std.shell as shell`: run a command with a timeout.

    job backup = shell.run(command=["pg_dump", "-f", "/backups/db.sql", "shop"], timeout=600)

`command` is a list of arguments, or a string split like a shell would split it (no shell runs, so
no `|`, `>` or `$VAR`). Returns `{"returncode", "stdout", "stderr"}`. A non-zero exit raises
`CommandFailed` unless `check=false`; running longer than `timeout` seconds kills the command and
raises `TimeoutError`.
"""

from __future__ import annotations

import shlex
import subprocess
from typing import Any

from tqflow.errors import UsageError, WorkerError
from tqflow.runtime import task


class CommandFailed(WorkerError):
    def __init__(self, command: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"`{shlex.join(command)}` exited with {returncode}: {stderr.strip()[-500:]}")
        self.returncode = returncode


@task
def run(
    command: list[str] | str,
    timeout: float = 60.0,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> dict[str, Any]:
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        raise UsageError(f"shell.run needs a command, got {command!r}")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
    except subprocess.TimeoutExpired as err:
        raise TimeoutError(f"`{shlex.join(argv)}` did not finish within {timeout}s") from err
    if check and done.returncode != 0:
        raise CommandFailed(argv, done.returncode, done.stderr)
    return {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
