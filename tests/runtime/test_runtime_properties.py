"""Property tests: retry schedules stay inside their policy's bounds, and a stateful test drives the job
state machine on a real Redis through random interleavings of starts, completions, failures, retries,
cancellations, replays and stale finishes, checking the invariants after every step."""

from __future__ import annotations

import random
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tqflow.plan import RetryPlan
from tqflow.runtime.backoff import MAX_DELAY_MS, attempts_left, delay_ms
from tqflow.runtime.connection import connect_sync
from tqflow.runtime.jobs import new_job_id
from tqflow.runtime.resend import new_nonce
from tqflow.runtime.store import calls
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.scripts import script_text

jitters = st.sampled_from(["none", "full", "equal", "10%", "50%"])


@given(
    base=st.integers(0, 60_000),
    factor=st.floats(1.0, 4.0),
    cap=st.one_of(st.none(), st.integers(0, 600_000)),
    jitter=jitters,
    attempt=st.integers(1, 30),
    seed=st.integers(0, 2**32),
)
def test_exponential_delays_stay_within_the_policy(
    base: int, factor: float, cap: int | None, jitter: str, attempt: int, seed: int
) -> None:
    policy = RetryPlan(
        kind="exponential", attempts=50, delay_ms=base, factor=factor, max_delay_ms=cap, jitter=jitter
    )
    nominal = min(int(base * factor ** (attempt - 1)), MAX_DELAY_MS)
    if cap is not None:
        nominal = min(nominal, cap)
    got = delay_ms(policy, attempt, random.Random(seed))
    _check_jitter(got, nominal, jitter)


@given(
    delays=st.lists(st.integers(0, 100_000), min_size=1, max_size=8),
    attempt=st.integers(1, 12),
    jitter=jitters,
    seed=st.integers(0, 2**32),
)
@settings(deadline=None)  # pure arithmetic; a loaded box overran the 200 ms default once
def test_schedule_and_fixed_delays(delays: list[int], attempt: int, jitter: str, seed: int) -> None:
    policy = RetryPlan(kind="schedule", attempts=20, schedule_ms=delays, jitter=jitter)
    nominal = delays[min(attempt, len(delays)) - 1]
    _check_jitter(delay_ms(policy, attempt, random.Random(seed)), nominal, jitter)
    fixed = RetryPlan(kind="fixed", attempts=20, delay_ms=delays[0], jitter=jitter)
    _check_jitter(delay_ms(fixed, attempt, random.Random(seed)), delays[0], jitter)


@given(attempts=st.integers(1, 20), kind=st.sampled_from(["none", "fixed", "exponential", "schedule"]))
def test_attempts_count_every_try_including_the_first(attempts: int, kind: str) -> None:
    delays = [1000] if kind == "schedule" else []  # a schedule has at least one delay (the model checks)
    policy = RetryPlan(kind=kind, attempts=attempts, schedule_ms=delays)  # type: ignore[arg-type]
    tries = 1
    while attempts_left(policy, tries):
        tries += 1
    assert tries == (1 if kind == "none" else attempts)


def _check_jitter(got: int, nominal: int, jitter: str) -> None:
    if jitter == "none":
        assert got == nominal
    elif jitter == "full":
        assert 0 <= got <= nominal
    elif jitter == "equal":
        assert nominal // 2 <= got <= nominal
    else:
        spread = int(nominal * float(jitter[:-1]) / 100)
        assert max(0, nominal - spread) <= got <= nominal + spread


class JobMachine(RuleBasedStateMachine):
    """A model of each job's state next to the real scripts; both must agree after every step."""

    url = ""

    @initialize()
    def setup(self) -> None:
        self.keys = Keys(f"prop-{uuid.uuid4().hex[:10]}")
        self.redis = connect_sync(self.url, namespace=self.keys.namespace)
        self.now = 1_000_000
        self.model: dict[str, dict[str, Any]] = {}  # job id -> state, attempt, token, ...
        self.stream = self.keys.stream("default", 2)
        self.redis.xgroup_create(self.stream, self.keys.group, id="0", mkstream=True)

    def teardown(self) -> None:
        keys = list(self.redis.scan_iter(match=f"{self.keys.prefix}*", count=1000))
        if keys:
            self.redis.unlink(*keys)
        self.redis.close()

    def call(self, call: calls.ScriptCall) -> Any:
        reply = self.redis.eval(script_text(call.name), len(call.keys), *call.keys, *call.args)
        return calls.read_reply(call, reply)  # as Scripts.run reads it (their packed replies)

    def ids(self, state: str) -> list[str]:
        return sorted(i for i, m in self.model.items() if m["state"] == state)

    @rule()
    def enqueue(self) -> None:
        job_id = new_job_id()
        opts = '{"r":{"kind":"fixed","attempts":3,"delay_ms":10}}'
        reply = self.call(
            calls.enqueue(
                self.keys,
                "lane",
                new_nonce(),
                [self.now, "each", 1000],
                [4, "t.task", "default", 2, opts, f"{job_id}0|J-|{{}}"],
            )
        )
        assert reply == ["done", "ok"]
        self.model[job_id] = {"state": "queued", "attempt": 0, "token": None}

    @precondition(lambda self: bool(self.ids("queued")))
    @rule(count=st.integers(1, 3))
    def fetch(self, count: int) -> None:
        started = self.call(
            calls.fetch(self.keys, self.now, "w1", f"t{self.now}-", 60_000, count, [(self.stream, count)])
        )
        expected = self.ids("queued")
        assert len(started) == min(count, len(expected))
        for row in started:
            job_id, token, attempt = row[0], row[1], int(row[2])
            model = self.model[job_id]
            assert model["state"] == "queued"
            model.update(state="running", token=token, attempt=model["attempt"] + 1)
            assert attempt == model["attempt"]

    @precondition(lambda self: bool(self.ids("running")))
    @rule(data=st.data(), outcome=st.sampled_from(["succeeded", "retry", "dead", "skipped"]))
    def finish(self, data: st.DataObject, outcome: str) -> None:
        job_id = data.draw(st.sampled_from(self.ids("running")))
        model = self.model[job_id]
        payload = "J-|1" if outcome == "succeeded" else '{"type":"E","message":"x"}'
        [status] = self.call(
            calls.finish_many(
                self.keys, self.now, 0, [[job_id, model["token"], outcome, payload, self.now + 5, ""]]
            )
        )
        if model.pop("cancel", False) and outcome != "succeeded":
            outcome = "cancelled"  # a cancellation asked while it ran wins over a failure or a skip
        assert status == outcome
        model["token"] = None
        model["state"] = {"retry": "retrying"}.get(outcome, outcome)

    @precondition(lambda self: any(m["token"] for m in self.model.values()) or bool(self.model))
    @rule(data=st.data())
    def stale_finish(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.model)))
        [status] = self.call(
            calls.finish_many(self.keys, self.now, 0, [[job_id, "not-the-token", "succeeded", "J-|2", 0, ""]])
        )
        assert status == "stale"

    @rule()
    def tick(self) -> None:
        self.now += 20
        self.call(calls.promote(self.keys, self.now, 500))
        for model in self.model.values():
            if model["state"] == "retrying":
                model["state"] = "queued"

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.model)))
        model = self.model[job_id]
        [status] = self.call(calls.cancel(self.keys, self.now, "test", [job_id]))
        if model["state"] in ("queued", "retrying"):
            assert status == "cancelled"
            model["state"] = "cancelled"
        elif model["state"] == "running":
            assert status == "cancelling"
            model["cancel"] = True
        else:
            assert status == model["state"]

    @precondition(lambda self: bool(self.ids("dead")))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.ids("dead")))
        assert self.call(calls.replay(self.keys, self.now, "", [job_id])) == ["replayed"]
        self.model[job_id].update(state="queued", attempt=0)

    @invariant()
    def records_match_the_model(self) -> None:
        if not hasattr(self, "model"):
            return
        for job_id, model in self.model.items():
            state, attempt, token = self.redis.hmget(self.keys.job(job_id), "state", "attempt", "token")
            assert state == model["state"], (job_id, state, model)
            assert int(attempt or 0) == model["attempt"]
            assert (token or None) == (model["token"] if state == "running" else None)

    @invariant()
    def only_live_jobs_have_stream_entries(self) -> None:
        if not hasattr(self, "model"):
            return
        entries = self.redis.xrange(self.stream)
        in_stream = sorted(fields["j"] for _, fields in entries)
        live = sorted(i for i, m in self.model.items() if m["state"] in ("queued", "running"))
        assert in_stream == live
        dead = set(self.redis.zrange(self.keys.dlq, 0, -1))
        assert dead == set(self.ids("dead"))


def test_job_state_machine(redis_url: str) -> None:
    JobMachine.url = redis_url
    run_state_machine_as_test(
        JobMachine,
        settings=settings(
            max_examples=25, stateful_step_count=30, deadline=None, suppress_health_check=list(HealthCheck)
        ),
    )
