"""The worker's per-job fast paths give what the slow paths gave: a job's log context set lazily, job lines
below the level never built, hook dispatch from cached methods; handlers that post their end and return,
whose ends a stopping worker still writes before it hands anything back."""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import structlog
import structlog.testing

from tqflow.runtime.client import Client
from tqflow.runtime.connection import connect
from tqflow.runtime.hooks import AttemptEvent, OutcomeEvent
from tqflow.runtime.logging import JobLogHooks, configure_logging, job_context
from tqflow.runtime.registry import load_tasks
from tqflow.runtime.worker import Worker, WorkerSettings
from tqflow.runtime.worker.context import WorkerContext
from tqflow.runtime.worker.finisher import Finisher

from helpers import FLOWS

TASKS = load_tasks(["job_tasks"], [FLOWS])
import job_tasks as jt  # noqa: E402 - loaded from tests/flows above

EVENT = AttemptEvent(
    job_id="p1:default.2.1733140000000-0",
    task="jobs.noop",
    queue="default",
    priority="normal",
    attempt=2,
    worker="w-1",
    run_id="p1:r-9",
    flow="nightly",
)


@pytest.fixture(autouse=True)
def structlog_restored() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.reset_defaults()
    structlog.configure(**saved)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_line_logged_during_an_attempt_carries_its_job_context(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", json_output=True)
    hooks = JobLogHooks()
    log = structlog.get_logger("t")

    def in_the_handler() -> None:
        hooks.attempt_started(EVENT)
        log.warning("the task says", task="its own")  # a line's own field wins

    contextvars.copy_context().run(in_the_handler)
    log.warning("elsewhere")  # the handler's context ended with it
    inside, outside = json_lines(capsys.readouterr().err)
    assert {k: inside[k] for k in job_context(EVENT)} == {**job_context(EVENT), "task": "its own"}
    assert inside["job"] == "p1:default.2.1733140000000-0" and inside["run"] == "p1:r-9"
    assert "job" not in outside and "run" not in outside


def test_under_another_set_up_the_context_is_bound_field_by_field() -> None:
    hooks = JobLogHooks()

    def in_the_handler() -> dict[str, Any]:
        with structlog.testing.capture_logs():  # its processors know nothing of add_job_context
            hooks.attempt_started(EVENT)
            return structlog.contextvars.get_contextvars()

    assert contextvars.copy_context().run(in_the_handler) == job_context(EVENT)


def outcome(result: str) -> OutcomeEvent:
    return OutcomeEvent(EVENT, result, 3, "ValueError" if result != "succeeded" else None, "bad")


def test_job_lines_below_the_level_are_not_logged_and_follow_a_new_set_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hooks = JobLogHooks()
    configure_logging("warning", json_output=True)
    hooks.attempt_started(EVENT)  # a debug line
    hooks.attempt_finished(outcome("succeeded"))  # an info line
    hooks.attempt_finished(outcome("retry"))  # a warning line
    lines = json_lines(capsys.readouterr().err)
    assert [(line["event"], line["outcome"], line["level"]) for line in lines] == [
        ("job finished", "retry", "warning")
    ]
    assert lines[0]["error_type"] == "ValueError" and lines[0]["duration_ms"] == 3
    configure_logging("debug", json_output=True)
    hooks.attempt_started(EVENT)
    hooks.attempt_finished(outcome("succeeded"))
    lines = json_lines(capsys.readouterr().err)
    assert [(line["event"], line["level"]) for line in lines] == [
        ("job started", "debug"),
        ("job finished", "info"),
    ]
    assert lines[1]["job"] == EVENT.job_id and lines[1]["flow"] == "nightly"


class Seen:
    def __init__(self) -> None:
        self.started: list[AttemptEvent] = []

    def attempt_started(self, event: AttemptEvent) -> None:
        self.started.append(event)

    def attempt_finished(self, event: OutcomeEvent) -> None:
        pass


class Broken(Seen):
    def attempt_started(self, event: AttemptEvent) -> None:
        raise RuntimeError("a broken hook")


def test_hooks_added_or_replaced_after_the_first_job_are_called_and_a_broken_one_is_skipped() -> None:
    first, later, replacing = Seen(), Seen(), Seen()
    hooks: list[Any] = [Broken(), first]
    context = WorkerContext(cast(Any, None), cast(Any, None), cast(Any, None), cast(Any, None), hooks)
    with structlog.testing.capture_logs() as logged:
        context.emit("attempt_started", EVENT)
        hooks.append(later)  # as Worker adds its heartbeat after the roles were made
        context.emit("attempt_started", EVENT)
        hooks[1] = replacing
        context.emit("attempt_started", EVENT)
    assert (len(first.started), len(later.started), len(replacing.started)) == (2, 2, 1)
    assert [line["hook"] for line in logged if line["event"] == "worker hook failed"] == ["Broken"] * 3


async def test_a_stopping_worker_writes_the_ends_its_handlers_posted_before_it_hands_anything_back(
    redis_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = Finisher._send

    async def slow_write(self: Finisher, batch: Any) -> list[Any]:
        await asyncio.sleep(0.4)  # the ends are on their way when the worker is told to stop
        return await written(self, batch)

    monkeypatch.setattr(Finisher, "_send", slow_write)
    client = Client.from_url(redis_url, namespace)
    redis = connect(redis_url)
    seen = Seen()
    worker = Worker(redis, TASKS, namespace, WorkerSettings(block_ms=100, concurrency=10), [seen])
    stop = asyncio.Event()
    try:
        ids = [await client.enqueue(jt.sleeper, seconds=0.01) for _ in range(6)]
        running = asyncio.create_task(worker.run(stop))
        deadline = time.monotonic() + 20
        while len(seen.started) < 6 or worker.runner.in_flight:  # every body over, its handler returned
            assert time.monotonic() < deadline and not running.done()
            await asyncio.sleep(0.005)
        assert worker.completed < 6  # some ends were still being written
        stop.set()
        await asyncio.wait_for(running, 20)
        assert worker.completed == 6
        # none was handed back (no worker is left to run it again): each succeeded, once
        assert [await client.result(i, timeout=5) for i in ids] == ["woke"] * 6
        assert [(await client.job(i)).attempt for i in ids] == [1] * 6
    finally:
        stop.set()
        await client.close()
        await redis.aclose()


# -- options parsed once per distinct text -------------------------------------------------------------


def row(opts: str | None, run: str | None = None) -> list[Any]:
    return ["default.2.1-0", "@1-0", 1, "jobs.noop", 'J-|{"x":1}', opts, "default", "2", "1", None, run]


def test_options_are_parsed_once_per_text_and_each_attempt_adopts_into_its_own_copy() -> None:
    from tqflow.plan import RetryPlan
    from tqflow.runtime.task import TaskOptions
    from tqflow.runtime.worker import attempt as attempts

    text = '{"r":{"kind":"fixed","attempts":3,"delay_ms":10},"t":2500}'
    attempts._options.cache_clear()
    first, second = attempts.Attempt(row(text), "w"), attempts.Attempt(row(text), "w")
    assert attempts._options.cache_info().misses == 1 and attempts._options.cache_info().hits == 1
    assert first.retry == RetryPlan(kind="fixed", attempts=3, delay_ms=10) and first.timeout_ms == 2500
    assert first.opts == json.loads(text) and first.raw_opts == text
    # a task's dead-letter queue adopted by one attempt is not seen by the other, nor by the next parse
    first.adopt(TaskOptions("jobs.noop", dead_letter="mine", retry=RetryPlan(kind="fixed", attempts=9)))
    assert first.dead_letter == "mine" and first.retry.attempts == 3  # the job's own retry wins
    assert second.dead_letter == "" and "dlq" not in attempts.Attempt(row(text), "w").opts
    task = TaskOptions("jobs.noop", retry=RetryPlan(kind="fixed", attempts=4), timeout_ms=700)
    third, fourth = attempts.Attempt(row(None), "w"), attempts.Attempt(row(None), "w")
    third.adopt(task)
    assert third.opts == {"r": {"kind": "fixed", "attempts": 4}, "t": 700} and third.timeout_ms == 700
    third.opts["r"]["attempts"] = 99  # the task's retry text, dumped once, is copied into each attempt
    fourth.adopt(task)
    assert fourth.opts["r"] == {"kind": "fixed", "attempts": 4} and fourth.retry is task.retry


@pytest.mark.parametrize("text", ["{{{", "[1, 2]", '{"r": {"kind": "sometimes"}}', '{"t": "soon"}'])
def test_options_that_do_not_parse_mark_the_attempt_malformed_every_time(text: str) -> None:
    from tqflow.runtime.worker.attempt import Attempt

    for _ in range(2):  # a refused text is not cached as parsed
        attempt = Attempt(row(text), "w")
        assert attempt.malformed and attempt.malformed.startswith("the job's record does not parse")
        assert (attempt.opts, attempt.timeout_ms) == ({}, None)


# -- payloads and results: the fast paths give what the slow paths gave ----------------------------------

VALUES: list[Any] = [
    0,
    -7,
    10**30,
    -(10**200),
    True,
    False,
    None,
    1.5,
    "text",
    "ünïcode ☃ \u2028",
    "",
    [],
    {},
    {"x": 1},
    {"nested": [{"a": [1, 2.5, None, True, "s"]}, {"b": {"c": {"d": []}}}], "big": 2**70},
    [[[[[]]]]],
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_the_codec_encodes_every_kind_as_json_dumps_does(value: Any) -> None:
    from tqflow.runtime.store import codec

    assert codec.encode(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert json.loads(codec.encode(value)) == value


def test_an_int_past_the_digit_limit_is_refused_by_both_paths() -> None:
    from tqflow.runtime.store import codec

    huge = 10**5000
    with pytest.raises(ValueError, match="digits"):
        json.dumps(huge)
    with pytest.raises(ValueError, match="digits"):
        codec.encode(huge)
    with pytest.raises(ValueError, match="digits"):
        codec.encode([huge])


def slow_decode(text: str) -> tuple[int | None, Any]:
    """decode as it was: the header read field by field, the body by json.loads."""
    head, _, body = text.partition("|")
    return (int(head[2:]) if len(head) > 2 else None), (json.loads(body) if body else None)


@pytest.mark.parametrize("value", VALUES, ids=repr)
@pytest.mark.parametrize("version", [None, 1, 12])
def test_payloads_decode_as_the_slow_path_did(value: Any, version: int | None) -> None:
    from tqflow.runtime.store import payloads

    text = payloads.encode(value, payloads.DEFAULT, version)
    assert payloads.decode(text) == slow_decode(text) == (version, value)


@pytest.mark.parametrize(
    "body", [" 1", "1 ", ' {"x": 1} ', "[1,\n2]\n", "NaN", "-Infinity", "1e400", '"\\ud800"']
)
def test_bodies_the_scanner_does_not_read_whole_decode_as_json_loads_does(body: str) -> None:
    from tqflow.runtime.store import payloads

    got = payloads.decode("J-|" + body)[1]
    want = json.loads(body)
    assert got == want or (got != got and want != want)  # NaN is not equal to itself


@pytest.mark.parametrize("body", ["{", "1 2", "[1,]", "tru", "01", "{'a': 1}", "\x00"])
def test_bodies_json_refuses_are_refused_with_its_error(body: str) -> None:
    from tqflow.runtime.store import payloads

    with pytest.raises(json.JSONDecodeError) as slow:
        json.loads(body)
    with pytest.raises(json.JSONDecodeError) as fast:
        payloads.decode("J-2|" + body)
    assert str(fast.value) == str(slow.value)


def test_headers_are_checked_every_time_and_binary_bodies_keep_their_bytes() -> None:
    from tqflow.runtime.store import payloads

    for bad in ("X-|1", "J?|1", "J-x|1", "no header", "J"):
        for _ in range(2):  # a refused header is not remembered
            with pytest.raises(payloads.PayloadError):
                payloads.decode(bad)
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(payloads.PayloadError, match="nested too deeply"):
        payloads.decode("J-|" + deep, payloads.PayloadSettings(max_bytes=10**6))
    raw = b"\xff\xfe\x00 not utf-8 \xc3"
    settings = payloads.PayloadSettings(codec="msgpack")
    text = payloads.encode({"blob": raw, "n": 2**40}, settings, 3)
    assert payloads.decode(text) == (3, {"blob": raw, "n": 2**40})


def test_plain_annotated_arguments_of_their_exact_type_pass_as_they_are() -> None:
    from tqflow.runtime.task import task
    from tqflow.runtime.validation import ArgumentError, validator

    @task
    def typed(n: int, s: str, ok: bool, f: float, when: Any = None) -> None:
        pass

    check = validator(typed)
    exact = {"n": 3, "s": "x", "ok": True, "f": 1.5}
    assert check.validate(exact) == exact
    converted = check.validate({"n": "4", "s": "x", "ok": "true", "f": 2})  # not exact: pydantic's way
    assert converted == {"n": 4, "s": "x", "ok": True, "f": 2.0} and type(converted["f"]) is float
    with pytest.raises(ArgumentError, match="argument `n`"):
        check.validate({"n": "four", "s": "x", "ok": True, "f": 1.5})


# -- the deployment's job counters: one tally a job, the fields made at the flush --------------------------


class Unreachable:
    def pipeline(self, transaction: bool = False) -> Any:
        raise ConnectionError("redis is away")


async def test_job_counters_make_the_fields_they_made_per_job_and_keep_them_while_redis_is_away() -> None:
    from tqflow.runtime.metrics import RedisJobCounters

    counters = RedisJobCounters(Unreachable(), "ns", tasks=["jobs.noop"])
    slow = AttemptEvent("j2", "jobs.noop", "q", "high", 1, "w", waited_ms=70)
    stranger = AttemptEvent("j3", "made.up", "q", "normal", 1, "w", waited_ms=0)
    for event in (EVENT, slow, stranger):
        counters.attempt_started(event)
    counters.attempt_finished(OutcomeEvent(EVENT, "succeeded", 3))
    counters.attempt_finished(OutcomeEvent(slow, "retry", 2_000, "ValueError", "no"))
    counters.attempt_finished(OutcomeEvent(stranger, "dead", 0, "UnknownTask", "no task"))
    want = {
        "started|default|normal|jobs.noop": 1,
        "wait|default|normal|0.005": 1,
        "started|q|high|jobs.noop": 1,
        "wait|q|high|0.1": 1,
        "started|q|normal|unknown": 1,
        "wait|q|normal|0.005": 1,
        "succeeded|default|normal|jobs.noop": 1,
        "run|default|jobs.noop|0.005": 1,
        "retried|q|high|jobs.noop": 1,
        "run|q|jobs.noop|2.5": 1,
        "dead_lettered|q|normal|unknown": 1,
        "run|q|unknown|0.005": 1,
    }
    sums = {
        "wait_sum|default|normal": 0.0,
        "wait_sum|q|high": 0.07,
        "wait_sum|q|normal": 0.0,
        "run_sum|default|jobs.noop": 0.003,
        "run_sum|q|jobs.noop": 2.0,
        "run_sum|q|unknown": 0.0,
    }
    assert dict(counters.counts) == want and counters.sums == pytest.approx(sums)
    await counters.flush()  # Redis away: kept for the next one
    counters.attempt_started(EVENT)
    assert dict(counters.counts) == {
        **want,
        "started|default|normal|jobs.noop": 2,
        "wait|default|normal|0.005": 2,
    }
    assert counters.sums == pytest.approx(sums)


def test_events_made_in_one_step_are_the_dataclasses_own() -> None:
    import dataclasses

    from tqflow.errors import UsageTypeError
    from tqflow.runtime.hooks import made

    fields = {f.name: getattr(EVENT, f.name) for f in dataclasses.fields(AttemptEvent)}
    event = made(AttemptEvent, **fields)
    assert event == EVENT and hash(event) == hash(EVENT) and repr(event) == repr(EVENT)
    ended = made(OutcomeEvent, attempt=event, outcome="dead", duration_ms=4, error_type="X", error_message="")
    assert ended == OutcomeEvent(EVENT, "dead", 4, "X", "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.job_id = "other"  # type: ignore[misc]
    with pytest.raises(UsageTypeError, match="takes exactly"):
        made(OutcomeEvent, attempt=event, outcome="dead", duration_ms=4)  # a field missing


def test_the_hot_path_events_are_the_dataclasses_own() -> None:
    import dataclasses

    from tqflow.runtime.hooks import attempt_event, outcome_event

    values = [getattr(EVENT, f.name) for f in dataclasses.fields(AttemptEvent)]
    event = attempt_event(*values)
    assert event == EVENT and hash(event) == hash(EVENT) and repr(event) == repr(EVENT)
    assert vars(event) == vars(AttemptEvent(*values))
    ended = outcome_event(event, "dead", 4, "X", "")
    assert ended == OutcomeEvent(EVENT, "dead", 4, "X", "") and repr(ended) == repr(
        OutcomeEvent(EVENT, "dead", 4, "X", "")
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        ended.outcome = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "job_id",
    [
        "default.2.1733140000000-0",
        "a.b.c.0.1-2",
        "q.4.12-3\n",
        "q.5.1-2",
        ".2.1-0",
        "q.2.1-",
        "q.2.-1",
        "q.2.1-0x",
        "q\n.2.1-0",
        "q.2.\u0661-\u0662",  # Unicode digits, which \d takes
        "3f2a9c0d1e",
        "",
    ],
)
def test_is_lean_answers_as_parse_does(job_id: str) -> None:
    from tqflow.runtime.store import lean

    assert lean.is_lean(job_id) is (lean.parse(job_id) is not None)


def test_a_finish_batch_reaches_each_hook_in_order_and_a_broken_call_skips_one_event() -> None:
    from tqflow.runtime.hooks import no_op

    class Ends:
        attempt_started = no_op

        def __init__(self) -> None:
            self.ended: list[str] = []

        def attempt_finished(self, event: OutcomeEvent) -> None:
            if event.outcome == "boom":
                raise RuntimeError("a broken hook")
            self.ended.append(event.outcome)

    first, second = Ends(), Ends()
    context = WorkerContext(
        cast(Any, None), cast(Any, None), cast(Any, None), cast(Any, None), [first, second]
    )
    events = [outcome(r) for r in ("succeeded", "boom", "retry")]
    with structlog.testing.capture_logs() as logged:
        context.emit_all("attempt_finished", events)
        context.emit("attempt_started", EVENT)  # a no-op method is not called (nothing to call)
    assert first.ended == second.ended == ["succeeded", "retry"]
    assert [line["hook"] for line in logged if line["event"] == "worker hook failed"] == ["Ends"] * 2
    assert context._methods["attempt_started"] == []
