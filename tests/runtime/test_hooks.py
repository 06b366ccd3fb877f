from __future__ import annotations

from tqflow.runtime.client import Client
from tqflow.runtime.hooks import AttemptEvent, OutcomeEvent

from helpers import WorkerFactory, plan_of, sample_tasks


class Recorder:
    def __init__(self) -> None:
        self.started: list[AttemptEvent] = []
        self.finished: list[OutcomeEvent] = []

    def attempt_started(self, event: AttemptEvent) -> None:
        self.started.append(event)

    def attempt_finished(self, event: OutcomeEvent) -> None:
        self.finished.append(event)


class Broken:
    def attempt_started(self, event: AttemptEvent) -> None:
        raise RuntimeError("a broken hook")

    def attempt_finished(self, event: OutcomeEvent) -> None:
        raise RuntimeError("a broken hook")


async def test_hooks_see_every_attempt_and_outcome(client: Client, start_worker: WorkerFactory) -> None:
    _, tasks = sample_tasks()
    await client.deploy(plan_of("failing.tqflow"))
    recorder = Recorder()
    await start_worker(tasks, hooks=[Broken(), recorder])
    info = await client.wait(await client.start_run("failing"), timeout=20)
    assert info.state == "failed"
    outcomes = sorted(
        (e.attempt.job_id.split(".")[1], e.attempt.attempt, e.outcome) for e in recorder.finished
    )
    assert outcomes == [
        ("always", 1, "succeeded"),
        ("bad", 1, "retry"),
        ("bad", 2, "dead"),
        ("cleanup", 1, "succeeded"),
    ]
    bad = next(e for e in recorder.finished if e.outcome == "dead")
    assert (
        bad.error_type == "ValueError" and bad.attempt.queue == "default" and bad.attempt.priority == "normal"
    )
    assert len(recorder.started) == 4
