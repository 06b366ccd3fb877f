"""The hand-off of a cron tick's run to a data partition (issue 13; docs/cluster.md).

With one partition a tick's run is made in the fire script itself (the fence and submit_run in one slot).
With several, the trigger and its tick key are in the control slot and the run in a data partition, which
no one script can write both of. So firing is two idempotent steps:
1. in the control slot, one script (`cluster_fire_handoff`): the leader's fence, `last` moved forward, the
   tick key SET NX to the run's id (`pK:LOCAL`, fixed here), and the run's submission put in the outbox
   (`{ns}:outbox`, field = that id);
2. in partition K, `submit_run` with that id, then the outbox field is deleted.
A leader that dies between the two leaves the field; every leader pass starts by sending what the outbox
holds (`deliver_all`). Sending again is harmless: the run id is fixed in step 1, so a second submit finds
the run there (`already exists`) and only the field is deleted. The tick fires once (step 1 is fenced by
the tick key), and its run is made once (by its id).
"""

from __future__ import annotations

import json

import structlog
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tqflow.runtime.partitions import RunPlaces
from tqflow.runtime.store.calls import ScriptCall
from tqflow.runtime.store.cluster_keys import ClusterKeys

log = structlog.get_logger("tqflow.scheduler")


def submission(call: ScriptCall) -> str:
    """What the outbox keeps of a run's submit_run call: its arguments (its keys follow from its id)."""
    assert call.name == "submit_run", call.name
    return json.dumps([str(a) if isinstance(a, bytes) else a for a in call.args])


async def deliver(redis: Redis, keys: ClusterKeys, places: RunPlaces, run_id: str, kept: str) -> str:
    """Step 2 of one hand-off: make the run in its partition (once), then forget the outbox field.
    Returns `made` or `existed` (a repeat: the run was made by an earlier send)."""
    place, local = places.at(run_id)
    args = json.loads(kept)
    call = ScriptCall("submit_run", [place.keys.run(local), place.keys.runs], args)
    outcome = "made"
    try:
        await place.scripts.run(call)
    except ResponseError as err:
        if "already exists" not in str(err):
            raise
        outcome = "existed"
    await redis.hdel(keys.outbox, run_id)
    return outcome


async def deliver_all(redis: Redis, keys: ClusterKeys, places: RunPlaces) -> int:
    """Send every hand-off the outbox holds (a leader died between the steps); returns how many."""
    held = await redis.hgetall(keys.outbox)
    for run_id, kept in held.items():
        outcome = await deliver(redis, keys, places, str(run_id), str(kept))
        log.info("tick's run handed to its partition", run=str(run_id), outcome=outcome)
    return len(held)
