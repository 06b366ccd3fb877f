"""What every role of one worker shares: its Redis connection, key names, scripts, settings and hooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis

from tqflow.runtime.hooks import AttemptEvent, OutcomeEvent, WorkerHooks, no_op
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

    def _hooks_of(self, name: str) -> list[Callable[[Any], None]]:
        if self._methods_of != self.hooks:
            self._methods = {}
            self._methods_of = list(self.hooks)
        methods = self._methods.get(name)
        if methods is None:
            found = [getattr(hook, name) for hook in self.hooks]
            methods = self._methods[name] = [m for m in found if getattr(m, "__func__", None) is not no_op]
        return methods

    def emit(self, name: str, event: AttemptEvent | OutcomeEvent) -> None:
        for method in self._hooks_of(name):
            try:
                method(event)
            except Exception as err:  # a broken hook must not break job processing
                _failed(method, err)

    def emit_all(self, name: str, events: list[OutcomeEvent]) -> None:
        """`emit` of each event, hook by hook: a finish batch's ends, one look-up of the hooks a batch
        (each hook hears the events in their order; a broken call skips that event only)."""
        for method in self._hooks_of(name):
            for event in events:
                try:
                    method(event)
                except Exception as err:
                    _failed(method, err)


def _failed(method: Callable[[Any], None], err: Exception) -> None:
    hook = getattr(method, "__self__", method)
    log.error("worker hook failed", hook=type(hook).__name__, error=repr(err))
