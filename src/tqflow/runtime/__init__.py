"""The runtime: tasks, the client, the worker and everything they share on Redis."""

from tqflow.runtime.limits import Limiter, Rate
from tqflow.runtime.task import Task, task

__all__ = ["Limiter", "Rate", "Task", "task"]
