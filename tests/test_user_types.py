"""Types reach users: a small user project, type-checked by mypy against tqflow as installed (the README's
`pip install -e .`: the package is found through site-packages, not through this repository's paths or
config), sees `@task` functions as `Task[P, R]` with their real types, and mypy flags a wrong argument."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

USER_CODE = """\
from tqflow.runtime import task
from tqflow.runtime.client import Client
from tqflow.runtime.sync import SyncClient


@task
def resize(path: str, width: int) -> int:
    return width


reveal_type(resize)
reveal_type(resize(path="a.png", width=3))
reveal_type(resize.call("a.png", width=3))


async def produce(client: Client, sync: SyncClient) -> None:
    job = await client.enqueue(resize, path="a.png", width=3)
    reveal_type(job)
    reveal_type(await client.result(job))
    reveal_type(sync.result(sync.enqueue(resize.call("b.png", 4))))
    reveal_type(sync.enqueue("images.resize", path="c.png"))
    resize.call("a.png", width="wide")
"""


def test_a_user_project_sees_tqflows_types(tmp_path: Path, cache: pytest.Cache) -> None:
    (tmp_path / "app.py").write_text(USER_CODE)
    # mypy's cache outlives the run (pytest's cache folder): it rechecks what changed, tqflow included;
    # a fresh one each run cost ~4 s of CPU
    cache_dir = cache.mkdir("user-types-mypy")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache_dir), "app.py"],
        cwd=tmp_path,  # no pyproject of ours, no mypy_path: tqflow comes from site-packages
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("app.py:")]
    assert lines == [
        'note: Revealed type is "tqflow.runtime.task.Task[[path: str, width: int], int]"',
        'note: Revealed type is "int"',
        'note: Revealed type is "tqflow.runtime.task.Call[int]"',
        'note: Revealed type is "tqflow.runtime.jobs.JobId[int]"',
        'note: Revealed type is "int"',
        'note: Revealed type is "int"',
        'note: Revealed type is "tqflow.runtime.jobs.JobId[Any]"',
        'error: Argument "width" to "call" of "Task" has incompatible type "str"; expected "int"  [arg-type]',
    ], done.stdout + done.stderr
