"""The runtime: tasks, the client, the worker and everything they share on Redis."""

from tqflow.runtime.task import Task, task

__all__ = ["Task", "task"]
