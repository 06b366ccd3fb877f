"""What each Lua script takes: its KEYS and ARGV, built from `Keys`. The one place a script call is laid out.

A function here returns a `ScriptCall` (script name, KEYS, ARGV); `Scripts.run` / `SyncScripts.run` send it
alone, `Scripts.queue` adds it to a pipeline. Every script takes its key prefix from the hash tag of KEYS[1]
(lua/common.lua), so a call is routed to the slot of the keys it declares. The keys a caller can name are
all in KEYS; the keys a script reaches through a record (a run's other jobs, a fan-out's children, a lean
job's record) are built from the same prefix and so are always in KEYS[1]'s slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from tqflow.plan import PRIORITIES
from tqflow.runtime.store import endrow
from tqflow.runtime.store.cluster_keys import ClusterKeys
from tqflow.runtime.store.keys import Keys

Arg = Any  # str, int or float: what Redis takes as an argument


class ScriptCall(NamedTuple):
    name: str
    keys: list[str]
    args: list[Arg]


# -- producers ---------------------------------------------------------------------------------------


def enqueue(
    keys: Keys,
    lane: str,
    nonce: str,
    head: Sequence[Arg],
    fields: Sequence[Arg],
    stage: str | None = None,
) -> ScriptCall:
    """`head` is (now, mode, max payload bytes); `fields` the page's spec and job fields, or (staged) the
    staged field count; `lane` (the client's, for this call: runtime/resend.py) keeps the reply under
    `nonce`, so that a re-send of the call answers the first send's reply."""
    declared = [keys.queues, keys.delayed, keys.submitted(lane)]
    return ScriptCall("enqueue", declared if stage is None else [*declared, stage], [*head, nonce, *fields])


RunJobs = str | Sequence[Mapping[str, str]]  # a run's job records (runs.job_records), or them as JSON


def run_jobs(jobs: RunJobs) -> list[Arg]:
    """A run's job records as create_run (lua/common.lua `run_jobs`) takes them: `#N` (N jobs), then each
    job's field count (2 a field) and its fields and values, flat, `name` and `deps_left` first; no JSON
    for Redis to decode (≈ 25k instructions a job, callgrind). A JSON list (what an older tqflow sent, and
    the outbox of a cluster's cron hand-off may still hold) is sent as it is: the script reads both."""
    if isinstance(jobs, str):
        return [jobs]
    args: list[Arg] = [f"#{len(jobs)}"]
    for job in jobs:
        args += (str(2 * len(job)), "name", job["name"], "deps_left", job["deps_left"])
        for k, v in job.items():
            if k != "name" and k != "deps_left":
                args += (k, v)
    return args


def submit_run(keys: Keys, now: int, run_id: str, run_fields: str, jobs: RunJobs) -> ScriptCall:
    return ScriptCall("submit_run", [keys.run(run_id), keys.runs], [now, run_id, run_fields, *run_jobs(jobs)])


def subflow_start(
    keys: Keys, now: int, job_id: str, launch: int, child: str, run_fields: str, jobs: RunJobs
) -> ScriptCall:
    return ScriptCall(
        "subflow_start",
        [keys.job(job_id), keys.run(child), keys.runs],
        [now, job_id, launch, child, run_fields, *run_jobs(jobs)],
    )


def subflow_end(
    keys: Keys, now: int, job_id: str, child: str, outcome: str, payload: str, due: int = 0
) -> ScriptCall:
    return ScriptCall("subflow_end", [keys.job(job_id)], [now, job_id, child, outcome, payload, due])


def cancel(keys: Keys, now: int, reason: str, job_ids: Sequence[str]) -> ScriptCall:
    return ScriptCall("cancel", [keys.job(j) for j in job_ids], [now, reason, *job_ids])


def cancel_run(keys: Keys, now: int, run_id: str, names: Sequence[str]) -> ScriptCall:
    jobs = [keys.job(f"{run_id}.{name}") for name in names]
    return ScriptCall("cancel_run", [keys.run(run_id), *jobs], [now, run_id, *names])


def reprioritize(keys: Keys, now: int, level: int, job_ids: Sequence[str]) -> ScriptCall:
    return ScriptCall("reprioritize", [keys.job(j) for j in job_ids], [now, level, *job_ids])


def replay(
    keys: Keys,
    now: int,
    dead_letter: str,
    job_ids: Sequence[str],
    seen: Mapping[str, int | str] | None = None,
) -> ScriptCall:
    """`seen`: job id -> the `finished` ms of the dead-lettering the caller saw (see replay.lua)."""
    declared = [keys.dead_letter(dead_letter or None), *(keys.job(j) for j in job_ids)]
    if seen is None:
        return ScriptCall("replay", declared, [now, dead_letter, *job_ids])
    pairs = [v for j in job_ids for v in (j, str(seen.get(j) or ""))]
    return ScriptCall("replay", declared, [now, dead_letter, "\0seen", *pairs])


def resume_run(
    keys: Keys, now: int, run_id: str, from_job: str, jobs: Sequence[tuple[str, str]]
) -> ScriptCall:
    """`jobs`: (job name, its upstream job names joined by ','), in topological order."""
    declared = [keys.run(run_id), *(keys.job(f"{run_id}.{name}") for name, _ in jobs)]
    return ScriptCall("resume_run", declared, [now, run_id, from_job, *(v for job in jobs for v in job)])


def signal(keys: Keys, now: int, run_id: str, name: str, payload: str) -> ScriptCall:
    declared = [
        keys.run(run_id),
        keys.job(f"{run_id}.{name}"),
        keys.run_signals(run_id),
        keys.awaiting,
        keys.delayed,
    ]
    return ScriptCall("signal", declared, [now, run_id, name, payload])


def event_run(submit: ScriptCall, marker: str, window_ms: int) -> ScriptCall:
    """`submit` (a submit_run call) fenced by an event key's marker (lua/event_fence.lua)."""
    return ScriptCall("event_run", [*submit.keys, marker], [*submit.args, window_ms])


def watch(keys: Keys, job_id: str) -> ScriptCall:
    return ScriptCall("watch", [keys.job(job_id)], [job_id])


# -- workers -----------------------------------------------------------------------------------------


def fetch(
    keys: Keys, now: int, worker: str, token: str, lease_ms: int, wanted: int, plan: Sequence[tuple[str, int]]
) -> ScriptCall:
    """`plan`: (stream, count) in the order the worker's weights chose."""
    return ScriptCall(
        "fetch", [stream for stream, _ in plan], [now, worker, token, lease_ms, wanted, *(c for _, c in plan)]
    )


def fetched_rows(call: ScriptCall, reply: Sequence[Any]) -> list[list[Any]]:
    """fetch.lua's reply as one start row an attempt (lua/common.lua start_entry: id, token, attempt, task,
    payload, options, queue, level, enqueue ms, deadline, run info). A number n in the reply says the lean
    jobs after it were read from the call's KEYS[n]; a lean job comes as 4 items of the reply itself (entry
    id, task, payload, options or None), its first attempt, whose id, token and enqueue time its entry id and
    stream give (store/lean.py); a list is a start row."""
    rows: list[list[Any]] = []
    queue = level = ""
    i, n = 0, len(reply)
    while i < n:
        item = reply[i]
        if isinstance(item, int):
            queue, level = Keys.stream_place(call.keys[item - 1])
            i += 1
        elif isinstance(item, list):
            rows.append(item)
            i += 1
        else:
            entry, task, payload, opts = item, reply[i + 1], reply[i + 2], reply[i + 3]
            job_id, enqueued = f"{queue}.{level}.{entry}", entry.partition("-")[0]
            rows.append([job_id, f"@{entry}", 1, task, payload, opts, queue, level, enqueued, None, None])
            i += 4
    return rows


def read_reply(call: ScriptCall, reply: Any) -> Any:
    """What a call's script answered, as its caller reads it: the few scripts whose replies are packed for
    Redis's sake (fetch, finish_many) unpacked here, the others as they came. `Scripts.run` applies it; a
    pipeline's replies (`Scripts.queue`) come raw."""
    if call.name == "fetch":
        return fetched_rows(call, reply)
    if call.name == "finish_many":
        return finished_statuses(call, reply)
    return reply


def finished_statuses(call: ScriptCall, reply: Sequence[Any]) -> list[Any]:
    """finish_many.lua's reply as one status an attempt: the outcome each asked (its ARGV: a short form's
    is a success, a long form's its first field; a long form is 14 fields when its ninth is KNOWN), but
    where the reply's pairs (place from 1, status) say otherwise."""
    args, statuses = call.args, []
    i, n = 3, len(call.args)
    while i < n:
        first = str(args[i])
        if first[:1] == "@":
            statuses.append("succeeded")
            i += 2
        elif first == "+":
            statuses.append("succeeded")
            i += 4
        else:
            statuses.append(first)
            i += KNOWN_FIELDS if i + 8 < n and args[i + 8] == KNOWN else 10
    for k in range(0, len(reply), 2):
        statuses[int(reply[k]) - 1] = reply[k + 1]
    return statuses


def start_many(
    keys: Keys, now: int, worker: str, token: str, lease_ms: int, entries: Iterable[tuple[str, str, str]]
) -> ScriptCall:
    """`entries`: (job id or '' for an entry without one, stream, entry id) as a blocking read gave them."""
    streams: list[str] = []
    args: list[Arg] = [now, worker, token, lease_ms]
    for job_id, stream, entry in entries:
        streams.append(stream)
        args += [job_id, entry]
    return ScriptCall("start_many", streams, args)


def finish_many(
    keys: Keys, now: int, ttl_ms: int, attempts: Sequence[Sequence[Arg]], worker: str = ""
) -> ScriptCall:
    """`attempts`: (job id, token, outcome, payload, retry due ms, dead-letter queue name[, started ms,
    task[, arguments, options]]) each; the started time, task, arguments and options (and `worker`) are
    what a lean job's first attempt, which has no record, writes at its end (lua/common.lua finish_first;
    arguments '' when not sent: the script reads them from the entry). A lean first-attempt success whose
    arguments were sent goes in finish_many.lua's short form: token and its end record's packed field
    (store/endrow.py: the result in it), 2 arguments instead of 10 (its job is its key), or with options
    '+', token, options, packed field; any other end in the long form, outcome first: 10 fields, or 14 for
    an attempt started from a record that has, in place of the arguments and options, what its start gave:
    "\\0" and then records.StartKnown (stream, entry, run, parent, dependents; `ends_known`), which its end
    then does not read from the record."""
    args: list[Arg] = [now, ttl_ms, worker]
    for a in attempts:
        token = str(a[1])
        if len(a) == KNOWN_FIELDS and a[8] == KNOWN:
            args += [a[2], a[0], token, *a[3:]]
            continue
        if a[2] == "succeeded" and token[:1] == "@" and len(a) >= 10 and a[8]:
            # a lean job's first-attempt success with its arguments sent: the short form, its end record's
            # `ran` made here (store/endrow.py; lua/finish_many.lua)
            opts = str(a[9] or "")
            started = a[6] if isinstance(a[6], int) or str(a[6]).isdigit() else now
            ran = endrow.pack(started, now, worker, str(a[7]), opts.partition("\n")[0], str(a[8]), str(a[3]))
            if ran is not None:
                args += [token, ran] if not opts else ["+", token, opts, ran]
                continue
        args += [a[2], a[0], token, *a[3:10], *_PAD[: max(0, 10 - len(a))]]
    return ScriptCall("finish_many", [keys.job(str(a[0])) for a in attempts], args)


KNOWN = "\0"  # (finish_many.lua) what the attempt's start gave follows
KNOWN_FIELDS = 14
_PAD = ("",) * 10


def ends_known(known: Sequence[str]) -> list[str]:
    """The fields after an attempt's first 8 that send what its start gave back (records.StartKnown)."""
    return [KNOWN, *known]


def finish(
    keys: Keys,
    now: int,
    job_id: str,
    token: str,
    outcome: str,
    payload: str,
    due: int = 0,
    dead_letter: str = "",
    by: tuple[str, int, str] | None = None,
) -> ScriptCall:
    """`by`: (worker, started ms, task) of the attempt (see finish_many)."""
    args: list[Arg] = [now, job_id, token, outcome, payload, due, dead_letter, *(by or ())]
    return ScriptCall("finish", [keys.job(job_id)], args)


def start(
    keys: Keys, now: int, job_id: str, stream: str, entry: str, worker: str, token: str, lease_ms: int
) -> ScriptCall:
    return ScriptCall("start", [stream, keys.job(job_id)], [now, job_id, entry, worker, token, lease_ms])


def promote(keys: Keys, now: int, limit: int) -> ScriptCall:
    return ScriptCall("promote", [keys.delayed, keys.limit_due], [now, limit])


def limit_holders(keys: Keys, now: int) -> ScriptCall:
    """The semaphores of the zset layout folded into sets, once a namespace (a worker's start)."""
    return ScriptCall("limit_holders", [keys.limit_layout, keys.limit_keys], [now])


def age(keys: Keys, now: int, aging_ms: int, top: int, queues: Sequence[str]) -> ScriptCall:
    """The streams of the levels below `top` that aging may move from (normal and lower)."""
    levels = range(max(2, top + 1), len(PRIORITIES))
    return ScriptCall(
        "age", [keys.stream(q, level) for q in queues for level in levels], [now, aging_ms, top]
    )


def claim_unique(
    keys: Keys, now: int, job_id: str, token: str, key: str, ttl_ms: int, conflict: str
) -> ScriptCall:
    return ScriptCall(
        "claim_unique", [keys.job(job_id), keys.unique(key)], [now, job_id, token, key, ttl_ms, conflict]
    )


def fan_out(
    keys: Keys,
    now: int,
    parent: str,
    token: str,
    count: int,
    bodies: Sequence[str],
    stage: str | None = None,
    item_opts: Sequence[str] | None = None,
) -> ScriptCall:
    """`bodies` (and `item_opts`, one options JSON an item, when the items' options differ) in ARGV, or
    (staged) none: the staging list holds them (the bodies, then the options)."""
    declared = [keys.job(parent)] if stage is None else [keys.job(parent), stage]
    marked: list[Arg] = ["\0opts"] if item_opts is not None else []
    if stage is not None:
        return ScriptCall("fan_out", declared, [now, parent, token, count, *marked])
    return ScriptCall("fan_out", declared, [now, parent, token, count, *bodies, *marked, *(item_opts or [])])


# -- the cluster's roles -----------------------------------------------------------------------------


def heartbeat(
    keys: ClusterKeys, now: int, name: str, ttl_ms: int, lease_ms: int, record: str, job_ids: Sequence[str]
) -> ScriptCall:
    declared = [keys.workers, keys.worker(name), keys.leases, *(keys.base.job(j) for j in job_ids)]
    return ScriptCall("cluster_heartbeat", declared, [now, name, ttl_ms, lease_ms, record, *job_ids])


def reclaim(
    keys: ClusterKeys,
    stream: str,
    now: int,
    min_idle_ms: int,
    count: int,
    start_id: str,
    max_deliveries: int,
    steal_idle_ms: int,
    me: str,
    sent_ms: int,
    max_age_ms: int,
) -> ScriptCall:
    """`sent_ms`: when the call was made, by Redis's clock; one that reaches Redis more than `max_age_ms`
    later changes nothing (an outage held it: the silences it would judge were shared by its caller)."""
    return ScriptCall(
        "cluster_reclaim",
        [stream, keys.leases],
        [now, min_idle_ms, count, start_id, max_deliveries, steal_idle_ms, me, sent_ms, max_age_ms],
    )


def leases(
    keys: ClusterKeys, now: int, count: int, max_deliveries: int, sent_ms: int, max_age_ms: int
) -> ScriptCall:
    return ScriptCall(
        "cluster_leases", [keys.leases, keys.base.dlq], [now, count, max_deliveries, sent_ms, max_age_ms]
    )


def hand_back(
    keys: ClusterKeys,
    stream: str,
    now: int,
    me: str,
    count: int,
    count_lost: int = 0,
    blamed: Sequence[str] = (),
) -> ScriptCall:
    """`count_lost` (max deliveries), `blamed`: a crashing worker's hand-back (cluster_handback.lua)."""
    return ScriptCall("cluster_handback", [stream, keys.leases], [now, me, count, count_lost, *blamed])


def leader(keys: ClusterKeys, now: int, name: str, lease_ms: int, epoch: int, resign: bool) -> ScriptCall:
    return ScriptCall(
        "cluster_leader", [keys.leader, keys.leader_epoch], [now, name, lease_ms, epoch, int(resign)]
    )


def fire(
    keys: ClusterKeys,
    flow: str,
    trigger: str,
    tick_ms: int,
    holder: str,
    tick_ttl_ms: int,
    action: str,
    detail: str,
    run: ScriptCall,
) -> ScriptCall:
    """A cron tick: the leader's fence, then `run` (a submit_run call, or an empty one for a skip)."""
    fence_keys = [keys.leader, keys.tick(flow, trigger, tick_ms), keys.trigger(flow, trigger)]
    return ScriptCall(
        "cluster_fire", [*run.keys, *fence_keys], [*run.args, holder, tick_ms, tick_ttl_ms, action, detail]
    )


def fire_handoff(
    keys: ClusterKeys,
    flow: str,
    trigger: str,
    tick_ms: int,
    holder: str,
    tick_ttl_ms: int,
    action: str,
    run_id: str,
    submission: str,
) -> ScriptCall:
    """A cron tick whose run goes to a data partition: the leader's fence, then the run's submission put
    in the control slot's outbox under its id (`run_id` is also the tick key's value)."""
    fence_keys = [keys.leader, keys.tick(flow, trigger, tick_ms), keys.trigger(flow, trigger)]
    return ScriptCall(
        "cluster_fire_handoff",
        [keys.outbox, *fence_keys],
        [run_id, submission, holder, tick_ms, tick_ttl_ms, action, run_id],
    )


# -- retention (cluster/retention.py, `tqc dlq purge`) ------------------------------------------------------


def prune_runs(keys: Keys, now: int, keep_ms: int, runs: Sequence[tuple[str, Sequence[str]]]) -> ScriptCall:
    """`runs`: (run id, the job names of its plan version) for each run to look at."""
    args: list[Arg] = [now, keep_ms]
    for run_id, names in runs:
        args += [run_id, len(names), *names]
    return ScriptCall("prune_runs", [keys.runs], args)


def purge_dlq(keys: Keys, dlq: str | None, job_ids: Sequence[str]) -> ScriptCall:
    return ScriptCall("purge_dlq", [keys.dead_letter(dlq)], list(job_ids))
