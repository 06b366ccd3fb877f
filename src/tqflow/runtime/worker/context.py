"""What every role of one worker shares: its Redis connection, key names, scripts, settings and hooks."""

from __future__ import annotations

from dataclasses import dataclass

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

    def emit(self, name: str, event: AttemptEvent | OutcomeEvent) -> None:
        for hook in self.hooks:
            try:
                getattr(hook, name)(event)
            except Exception as err:  # a broken hook must not break job processing
                log.error("worker hook failed", hook=type(hook).__name__, error=repr(err))
