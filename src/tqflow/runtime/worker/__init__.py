"""The worker (`tqrun worker`): takes jobs from the queue streams, runs them, reports each attempt.

Each role is its own class in this package, composed by `Worker` (worker.py); see its docstring."""

from tqflow.runtime.worker.attempt import Attempt
from tqflow.runtime.worker.settings import DEFAULT_WEIGHTS, WorkerSettings
from tqflow.runtime.worker.worker import Component, Worker, refuse_bytes_replies

__all__ = ["DEFAULT_WEIGHTS", "Attempt", "Component", "Worker", "WorkerSettings", "refuse_bytes_replies"]
