"""One try of one job, as the fetch or start script handed it to a worker; parsing it never raises."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tqflow.plan import Priority, RetryPlan
from tqflow.runtime.hooks import AttemptEvent, OutcomeEvent
from tqflow.runtime.partitions import external_id
from tqflow.runtime.runs import now_ms
from tqflow.runtime.store import payloads
from tqflow.runtime.store.payloads import PayloadSettings
from tqflow.runtime.task import TaskOptions


def _options(raw: Any) -> dict[str, Any]:
    if not raw:
        return {}
    opts = json.loads(raw)
    if not isinstance(opts, dict):
        raise ValueError(f"options are a {type(opts).__name__}, not an object")
    return opts


class Attempt:
    """One try of one job, as the fetch or start script handed it to this worker.

    Parsing never raises (F15: one entry with `o={{{` raised here and crash-looped every worker): a field
    that does not parse leaves its default and sets `malformed` to the reason, and the worker dead-letters
    the attempt with it (`MalformedRecord`) instead of running it."""

    def __init__(self, row: Sequence[Any], worker: str, partition: int | None = None) -> None:
        job_id, token, attempt, task, payload, opts, queue, prio, enqueued, deadline_at, run = row
        self.job_id = str(job_id)
        self.partition = partition
        self.token = str(token)
        self.malformed: str | None = None
        self.number = int(attempt)  # HINCRBY's reply: always an integer
        self.task_name = str(task or "")
        self.payload = payload
        self.raw_opts = opts if isinstance(opts, str) else ""  # as the entry or record held them
        self.opts: dict[str, Any] = {}
        self.retry = RetryPlan()
        self.timeout_ms: int | None = None
        self.deadline_at: int | None = None
        self.run: dict[str, Any] | None = None
        level, waited_from = 2, None
        try:
            self.opts = _options(opts)
            raw_retry = self.opts.get("r")
            self.retry = RetryPlan.model_validate(raw_retry) if raw_retry else RetryPlan()
            self.timeout_ms = int(self.opts["t"]) if self.opts.get("t") else None
            self.deadline_at = int(deadline_at) if deadline_at else None
            level = int(prio or 2)
            if not 0 <= level < len(Priority):
                raise ValueError(f"priority level {level} out of range")
            waited_from = int(enqueued) if enqueued else None
            self.run = json.loads(run) if run else None
            if self.run is not None and not isinstance(self.run, dict):
                raise ValueError(f"run info is a {type(self.run).__name__}, not an object")
        except Exception as err:  # anything a garbage field raises
            self.malformed = f"the job's record does not parse: {type(err).__name__}: {str(err)[:200]}"
            self.opts, self.retry, self.timeout_ms, self.deadline_at, self.run = (
                {},
                RetryPlan(),
                None,
                None,
                None,
            )
            level = level if 0 <= level < len(Priority) else 2
        self.cancelled = False
        # a fan-out item runs as a plain job (no run context); the start names its parent, run and flow
        self.is_child = self.run is not None and "parent" in self.run
        of = self.run if self.is_child else None
        if of is not None:
            self.run = None
        self.started_ms = now_ms()
        run_id = str((of or self.run or {}).get("of_run" if of else "run") or "")
        self.event = AttemptEvent(
            job_id=external_id(partition, self.job_id),  # hooks and logs show the id callers know
            task=self.task_name,
            queue=str(queue or ""),
            priority=Priority.label_of(level),
            attempt=self.number,
            worker=worker,
            run_id=external_id(partition, run_id),
            flow=str((of or self.run or {}).get("flow") or ""),
            waited_ms=max(0, self.started_ms - (waited_from or self.started_ms)),
            local_id=self.job_id,
        )

    def outcome(self, result: str, payload: Any) -> OutcomeEvent:
        error = payload if isinstance(payload, dict) else {}
        return OutcomeEvent(
            attempt=self.event,
            outcome=result,
            duration_ms=now_ms() - self.started_ms,
            error_type=error.get("type"),
            error_message=error.get("message"),
        )

    def adopt(self, options: TaskOptions) -> None:
        """The task's own retry, timeout and dead-letter queue where the job sets none: a flow job whose
        plan gives none, a job sent by name before any worker published the task (runtime/catalog.py).
        A job that turned a retry off says so (`"r": {}`), so this never turns it back on."""
        if "r" not in self.opts and options.retry is not None:
            self.opts["r"] = options.retry.model_dump(mode="json", exclude_defaults=True)
            self.retry = options.retry
        if not self.opts.get("t") and options.timeout_ms:
            self.opts["t"] = options.timeout_ms
            self.timeout_ms = int(options.timeout_ms)
        if not self.opts.get("dlq") and options.dead_letter:
            self.opts["dlq"] = options.dead_letter

    @property
    def dead_letter(self) -> str:
        name = self.opts.get("dlq")
        return name if isinstance(name, str) else ""

    def time_left(self) -> float | None:
        """Seconds this attempt may run: its timeout, cut short by the job's deadline."""
        limits = []
        if self.timeout_ms:
            limits.append(self.timeout_ms / 1000)
        if self.deadline_at:
            limits.append((self.deadline_at - now_ms()) / 1000)
        return min(limits) if limits else None

    def deadline_hit(self) -> bool:
        return self.deadline_at is not None and now_ms() >= self.deadline_at - 5

    def environment(self, settings: PayloadSettings) -> Any:
        from tqflow.runtime.expressions import Environment
        from tqflow.runtime.runs import run_environment

        run = self.run or {}
        outputs = {name: payloads.value(v, settings) for name, v in (run.get("outputs") or {}).items() if v}
        params = json.loads(run["params"]) if run.get("params") else {}
        created = int(run.get("created") or now_ms())
        return Environment(
            params=params, outputs=outputs, run=run_environment(str(run.get("run")), created, self.partition)
        )
