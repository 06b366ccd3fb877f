"""Which tasks a worker may run: the @task functions of the modules it was told to load."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqflow.errors import WorkerError
from tqflow.plan.modules import resolve_module_name
from tqflow.runtime.task import Task, tasks_in


class TaskLoadError(WorkerError, ImportError):
    """A task module could not be imported."""


def load_tasks(modules: Iterable[str], search: Iterable[Path] = ()) -> dict[str, Task[Any, Any]]:
    for folder in search:
        path = str(Path(folder).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)
    registry: dict[str, Task[Any, Any]] = {}
    for name in modules:
        module_name = resolve_module_name(name)
        try:
            module = importlib.import_module(module_name)
        except Exception as err:
            raise TaskLoadError(f"cannot import task module `{module_name}`: {err}") from err
        registry.update(tasks_in(module))
    return registry
