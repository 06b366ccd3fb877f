"""The runtime examples run end to end (compiled from their .tqflow files, in-process workers)."""

from __future__ import annotations

from pathlib import Path

from tqflow.compiler import compile_file
from tqflow.runtime.client import Client
from tqflow.runtime.registry import load_tasks

from helpers import WorkerFactory

EXAMPLES = Path(__file__).parents[2] / "examples"


async def run_example(client: Client, start_worker: WorkerFactory, path: str, **params: str) -> object:
    result = compile_file(EXAMPLES / path)
    assert result.plan is not None, [d.message for d in result.diagnostics]
    [flow] = result.plan.flows.values()
    await client.deploy(result.plan)
    await start_worker(load_tasks(flow.modules, [(EXAMPLES / path).parent]), concurrency=8)
    return await client.wait(await client.start_run(flow.name, params), timeout=60)


async def test_fan_out_example(client: Client, start_worker: WorkerFactory) -> None:
    info = await run_example(client, start_worker, "fanout/fanout.tqflow", pages="30")
    assert info.state == "succeeded"  # type: ignore[attr-defined]
    assert info.outputs["pages"] == 30  # type: ignore[attr-defined]


async def test_payments_example_dead_letters_a_declined_card(
    client: Client, start_worker: WorkerFactory
) -> None:
    info = await run_example(
        client, start_worker, "payments/payments.tqflow", card="0000", order="o-declined"
    )
    assert info.state == "failed"  # type: ignore[attr-defined]
    charge = info.jobs["charge"]  # type: ignore[attr-defined]
    assert (charge.state, charge.attempt, charge.error["type"]) == ("dead", 1, "CardDeclined")
    assert [j.id for j in await client.dead_letters("payments")] == [f"{info.id}.charge"]  # type: ignore[attr-defined]
    assert info.jobs["refund_hold"].state == "succeeded"  # type: ignore[attr-defined]


async def test_crunch_example_on_the_process_pool(client: Client, start_worker: WorkerFactory) -> None:
    info = await run_example(client, start_worker, "crunch/crunch.tqflow", blocks="2", rounds="1000")
    assert info.state == "succeeded"  # type: ignore[attr-defined]
    assert len(info.outputs["digest"]) == 16  # type: ignore[attr-defined]
