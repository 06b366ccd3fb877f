"""One try of one job, as the fetch or start script handed it to a worker; parsing it never raises."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from tqflow.plan import LEVELS, PRIORITIES, RetryPlan
from tqflow.runtime.expressions import Environment
from tqflow.runtime.hooks import OutcomeEvent, attempt_event, outcome_event
from tqflow.runtime.partitions import external_id
from tqflow.runtime.runs import now_ms, run_environment
from tqflow.runtime.store import payloads, records
from tqflow.runtime.store.payloads import PayloadSettings
from tqflow.runtime.task import TaskOptions

NO_RETRY = RetryPlan()  # frozen: every attempt without a retry of its own shares it
OPTIONS_CACHED = 256  # distinct options texts kept parsed (a queue's jobs mostly share a few)
Options = tuple[dict[str, Any], RetryPlan, int | None]


@functools.lru_cache(maxsize=OPTIONS_CACHED)
def _options(raw: str) -> Options:
    """An options text, parsed once per distinct text: the object (shared: never written to, `adopt`
    makes its own), its retry plan and its timeout. What a bad text raises is not cached. A lean job's
    options may carry its limits after a newline (lua/fetch.lua: what its end gives back; a JSON text holds
    no newline of its own): not options."""
    head = raw.partition("\n")[0]
    if not head:
        return {}, NO_RETRY, None
    opts = json.loads(head)
    if not isinstance(opts, dict):
        raise ValueError(f"options are a {type(opts).__name__}, not an object")
    raw_retry = opts.get("r")
    retry = RetryPlan.model_validate(raw_retry) if raw_retry else NO_RETRY
    return opts, retry, int(opts["t"]) if opts.get("t") else None


def _options_of(raw: Any) -> Options:
    if not raw:
        return {}, NO_RETRY, None
    return _options(raw) if isinstance(raw, str) else _options.__wrapped__(raw)


RUNS_CACHED = 1024  # runs whose `run.*` fields are kept made (a batch's jobs mostly share a few runs)


@functools.lru_cache(maxsize=RUNS_CACHED)
def _run_fields(run_id: str, created: int, partition: int | None) -> dict[str, Any]:
    """`run.*` of a run, made once for all its jobs (shared: expressions only read it; its values are
    strings)."""
    return run_environment(run_id, created, partition)


_retry_texts: dict[int, tuple[RetryPlan, dict[str, Any]]] = {}  # by id: a task's retry, dumped once


def _retry_text(retry: RetryPlan) -> dict[str, Any]:
    found = _retry_texts.get(id(retry))
    if found is None or found[0] is not retry:
        if len(_retry_texts) > OPTIONS_CACHED:
            _retry_texts.clear()
        found = _retry_texts[id(retry)] = (retry, retry.model_dump(mode="json", exclude_defaults=True))
    return dict(found[1])


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
        self.opts: dict[str, Any] = {}  # may be shared with other attempts (_options): never written to
        self.retry = NO_RETRY
        self.timeout_ms: int | None = None
        self.deadline_at: int | None = None
        self.run: dict[str, Any] | None = None
        # what the start wrote or read of the record that its end sends back (finish_many), or None
        self.known: records.StartKnown | None = None
        level, waited_from = 2, None
        try:
            self.opts, self.retry, self.timeout_ms = _options_of(opts)
            self.deadline_at = int(deadline_at) if deadline_at else None
            level = int(prio or 2)
            if not 0 <= level < LEVELS:
                raise ValueError(f"priority level {level} out of range")
            waited_from = int(enqueued) if enqueued else None
            self.run, self.known = records.run_context(run, self.job_id)
        except Exception as err:  # anything a garbage field raises
            self.malformed = f"the job's record does not parse: {type(err).__name__}: {str(err)[:200]}"
            self.opts, self.retry, self.timeout_ms = {}, NO_RETRY, None
            self.deadline_at, self.run, self.known = None, None, None
            level = level if 0 <= level < LEVELS else 2
        self.cancelled = False
        # a fan-out item runs as a plain job (no run context); the start names its parent, run and flow
        self.is_child = self.run is not None and "parent" in self.run
        of = self.run if self.is_child else None
        if of is not None:
            self.run = None
        self.started_ms = now_ms()
        context = of or self.run
        run_id = str(context.get("of_run" if of else "run") or "") if context else ""
        one = partition is None  # one partition: the ids are the callers' already (no call to make them)
        self.event = attempt_event(
            self.job_id if one else external_id(partition, self.job_id),  # the id callers know
            self.task_name,
            str(queue or ""),
            PRIORITIES[level],
            self.number,
            worker,
            run_id if one else external_id(partition, run_id),
            str(context.get("flow") or "") if context else "",
            max(0, self.started_ms - (waited_from or self.started_ms)),
            self.job_id,
        )

    def outcome(self, result: str, payload: Any) -> OutcomeEvent:
        error = payload if isinstance(payload, dict) else {}
        return outcome_event(
            self.event,
            result,
            now_ms() - self.started_ms,
            error.get("type"),
            error.get("message"),
        )

    def adopt(self, options: TaskOptions) -> None:
        """The task's own retry, timeout and dead-letter queue where the job sets none: a flow job whose
        plan gives none, a job sent by name before any worker published the task (runtime/catalog.py).
        A job that turned a retry off says so (`"r": {}`), so this never turns it back on."""
        if options.retry is None and not options.timeout_ms and not options.dead_letter:
            return  # most tasks: nothing to adopt (no dict made a job)
        opts = self.opts
        own: dict[str, Any] = {}
        if "r" not in opts and options.retry is not None:
            own["r"] = _retry_text(options.retry)
            self.retry = options.retry
        if not opts.get("t") and options.timeout_ms:
            own["t"] = options.timeout_ms
            self.timeout_ms = int(options.timeout_ms)
        if not opts.get("dlq") and options.dead_letter:
            own["dlq"] = options.dead_letter
        if own:  # its own copy: self.opts may be shared
            self.opts = {**opts, **own}

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

    def environment(self, settings: PayloadSettings) -> Environment:
        """What this flow job's expressions read: the run's params, its upstream jobs' outputs (each
        decoded; a plain job without data dependencies has none) and `run.*` (made once a run)."""
        run = self.run or {}
        raw_outputs = run.get("outputs")
        outputs = (
            {name: payloads.value(v, settings) for name, v in raw_outputs.items() if v} if raw_outputs else {}
        )
        raw_params = run.get("params")
        params = json.loads(raw_params) if raw_params and raw_params != "{}" else {}
        created = int(run.get("created") or now_ms())
        return Environment(
            params=params, outputs=outputs, run=_run_fields(str(run.get("run")), created, self.partition)
        )
