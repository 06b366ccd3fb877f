"""`use std.log as log`: write a line to the worker's log (structured, with the run's context).

job done = log.line(message="nightly ETL finished", fields={"rows": load.out.row_count})
"""

from __future__ import annotations

import logging
from typing import Any

from tqflow.errors import UsageError
from tqflow.runtime import task

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
logger = logging.getLogger("tqflow.flow")


@task
def line(message: str, level: str = "info", fields: dict[str, Any] | None = None) -> str:
    """Log `message` at `level` (debug, info, warning, error) with `fields`; returns the message."""
    if level not in LEVELS:
        raise UsageError(f"level {level!r} is not one of {', '.join(LEVELS)}")
    logger.log(LEVELS[level], message, extra={"flow_fields": dict(fields or {})})
    return message
