"""What every role of one worker shares: its Redis connection, key names, scripts, settings and hooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis

from tqflow.runtime.hooks import AttemptEvent, OutcomeEvent, WorkerHooks
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import Scripts
from tqflow.runtime.worker.settings import WorkerSettings

log = structlog.get_logger("tqflow.worker")


@dataclass
class WorkerContext:
    redis: Redis
    keys: Keys
    scripts: Scripts
    settings: WorkerSettings
    hooks: list[WorkerHooks]  # the worker's own list: hooks added after the roles were made count too
    # each hook's bound method, by name, for the hooks as they were (`_methods_of`, compared by identity)
    _methods: dict[str, list[Callable[[Any], None]]] = field(default_factory=dict, repr=False)
    _methods_of: list[WorkerHooks] = field(default_factory=list, repr=False)

    def emit(self, name: str, event: AttemptEvent | OutcomeEvent) -> None:
        if self._methods_of != self.hooks:
            self._methods = {}
            self._methods_of = list(self.hooks)
        methods = self._methods.get(name)
        if methods is None:
            methods = self._methods[name] = [getattr(hook, name) for hook in self.hooks]
        for method in methods:
            try:
                method(event)
            except Exception as err:  # a broken hook must not break job processing
                hook = getattr(method, "__self__", method)
                log.error("worker hook failed", hook=type(hook).__name__, error=repr(err))
