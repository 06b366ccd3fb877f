-- Shared by every script (prepended when loaded). The key prefix ("{namespace}", or a partition's
-- "{namespace.k}") is the hash tag of KEYS[1]: every script declares the keys its caller can name in KEYS
-- (store/calls.py lays each call out), and builds the keys it reaches through a record (a run's other jobs,
-- a fan-out's children, a lean job's record) from the same prefix, so they are in KEYS[1]'s slot.
-- The key suffixes mirror store/keys.py, and tests/runtime/test_keys.py pins both.
--
-- The names derived from the prefix, and the state one call keeps (fair_refill, …), are set by bind() at the
-- start of every call: as an EVALSHA script the prelude runs on every call (the line below binds KEYS); as a
-- function library (store/scripts.py, FUNCTION LOAD) it runs once at load, and each function binds its keys.
local prefix, dlq_key, delayed_key, wake_channel, done_channel, after_waiting_key, oom_guard, awaiting_key
local lim_due_key, lim_keys_key, lim_defs_key  -- limits.lua
local lim_call_us, lim_specs, lim_batch, lim_cached  -- limits.lua: what one call reads once and batches
local lim_groups, lim_ends  -- limits.lua: a lean entry's `l` read (fetch), a lean end's options text read (finish)
local subflows_key  -- sub-flow jobs waiting for their child runs
-- One call's tables, nil until their first use: bind() makes none (a table made and collected is ~800
-- instructions, callgrind; eight a call were ~6.5k of every call's fixed cost), it drops the last call's.
local num_texts  -- txt: number -> its text, one call's
local json_texts  -- decoded: a record's JSON text -> its value, one call's (read only)
local run_starts  -- start_entry: run id -> its params and created, one call's
local lean_places  -- lean_first: QUEUE.LEVEL -> {queue, level, stream key} (false: not one), one call's
-- fair.lua: fetch.lua refills as it reads (fair_refill false: no refill at each start) and once at its end
-- the streams it took fed entries from (fair_touched: QUEUE\0LEVEL -> {queue, level}, nil while none)
local fair_refill, fair_touched
local BAD_KEYS = 'KEYS[1] must be a tqflow key ({namespace}:...)'
-- The key names derived from the prefix are made again only when the prefix changes (a dozen concatenations,
-- ~6k instructions a call): bound_key is the KEYS[1] they were made for, a cache, not a call's state.
local bound_key
local function bind(keys)
  local first = keys[1] or ''
  if first ~= bound_key then
    local tag = string.match(first, '^{[^}]*}')
    if not tag then return false end
    bound_key = first
    if tag ~= prefix then
      prefix = tag
      dlq_key, delayed_key, wake_channel = prefix .. ':dlq', prefix .. ':delayed', prefix .. ':delayed:wake'
      done_channel, after_waiting_key = prefix .. ':done', prefix .. ':after:waiting'
      oom_guard, awaiting_key, subflows_key = prefix .. ':oom-guard', prefix .. ':awaiting', prefix .. ':subflows'
      lim_due_key, lim_keys_key, lim_defs_key = prefix .. ':limit:due', prefix .. ':limit:keys', prefix .. ':limit:defs'
    end
  end
  fair_refill, fair_touched = true, nil
  lean_places, num_texts, json_texts, run_starts = nil, nil, nil, nil
  lim_call_us, lim_specs, lim_batch, lim_cached = nil, nil, false, nil
  lim_groups, lim_ends = nil, nil
  return true
end
if KEYS and not bind(KEYS) then return redis.error_reply(BAD_KEYS) end
local function job_key(id) return prefix .. ':job:' .. id end
-- A number as redis.call's argument, formatted once a call (a Lua number passed to redis.call is formatted
-- with sprintf, ~2,200 instructions, callgrind; the same text: "%.14g"): now, a lease's end, an attempt.
local function txt(x)
  local texts = num_texts
  if not texts then texts = {}; num_texts = texts end
  local t = texts[x]
  if not t then
    t = tostring(x)
    texts[x] = t
  end
  return t
end
local function run_key(id) return prefix .. ':run:' .. id end
-- A JSON text of a record (a run job's `dependents`, `data_deps`, `after`) decoded once a call: the children
-- of a run share their texts (`["join"]`, the same `after`), and a decode is ~6k instructions (callgrind).
-- The value is shared: no caller changes it.
local function decoded(text)
  local texts = json_texts
  if not texts then texts = {}; json_texts = texts end
  local v = texts[text]
  if v == nil then
    v = cjson.decode(text)
    texts[text] = v
  end
  return v
end
local function stream_key(queue, prio) return prefix .. ':q:' .. queue .. ':' .. prio end
-- A queue stream's place, parsed from its key alone: {queue, level, its lean job ids' head "QUEUE.LEVEL.",
-- its fair share's key (fair.lua fair_base)}, or false (not a queue stream's key). Kept by the key, like
-- bound_key a cache rather than a call's state (a library keeps its top level between calls; a script
-- parses once a call): fetch.lua looks up every stream of its worker each call, where the parses, matches
-- and concatenations were ~7k instructions a stream (callgrind). At most PLACES_KEPT keys, then anew.
local stream_places, stream_places_n
local PLACES_KEPT = 4096
local function stream_place(stream)
  local places = stream_places
  if not places or stream_places_n >= PLACES_KEPT then
    places = {}
    stream_places, stream_places_n = places, 0
  end
  local place = places[stream]
  if place == nil then
    local tag, q, p = string.match(stream, '^({[^}]*}):q:(.+):(' .. LEVEL .. ')$')
    place = tag and {q, p, q .. '.' .. p .. '.', tag .. ':fair:' .. q .. ':' .. p} or false
    places[stream] = place
    stream_places_n = stream_places_n + 1
  end
  return place
end
local function dlq_of(name)
  if name and name ~= '' then return prefix .. ':dlq:' .. name end
  return prefix .. ':dlq'
end
-- The done, cancel and wake channels are shard channels where the server has them (Redis 7+, Valkey: SPUBLISH
-- reaches only the subscribers of the slot's shard, not every node over the cluster bus); classic PUBLISH
-- before 7.0. REDIS_VERSION_NUM exists from 7.0 on, as SPUBLISH does; runtime/channels.py subscribes by the
-- same rule (redis_version), so both ends agree.
local PUBLISH = redis.REDIS_VERSION_NUM and 'SPUBLISH' or 'PUBLISH'
local function publish(channel, message) redis.call(PUBLISH, channel, message) end
local GROUP = 'tqflow'
local TERMINAL = {succeeded = true, dead = true, skipped = true, cancelled = true}
-- after_waiting_key: standalone dependents still waiting (Keys.after_waiting)

-- How long a standalone job's record stays once it ended outside a finish (a skipped dependent, a cancelled
-- idle job): the workers' --keep-results, which they write to Keys.keep_results (the finish scripts get
-- theirs as ARGV); a day (the default) before any worker wrote it.
local DEFAULT_KEEP_MS = 86400000
local function keep_results_ms()
  return tonumber(redis.call('GET', prefix .. ':keep-results') or '') or DEFAULT_KEEP_MS
end

-- A full Redis (maxmemory, policy noeviction) refuses a script's writes only at its first write, and only
-- when that command may grow memory; once a script has written anything, the rest of it runs (F14: the
-- heartbeat began with HSET and was refused while the reclaim, which began with XACK, went on, so live
-- workers looked dead and their jobs were reclaimed until dead-lettered). So a script that matters under
-- OOM says first thing which kind it is:
-- refuse_when_full(): new work and recovery, refused whole before any write (SETRANGE of an empty string
--   on a key that never exists: a write Redis refuses when full, that changes nothing otherwise);
-- run_when_full(): heartbeats and the ends of running attempts, which must go on (DEL of a key that never
--   exists: a write Redis never refuses, that changes nothing).
-- A function of the library (IN_LIBRARY, store/scripts.py) needs neither: Redis refuses a function without
-- the `allow-oom` flag whole, before it runs, when full, and runs one with it whole (scripts.py ALLOW_OOM
-- flags each that calls run_when_full()); so the guard's write, ~3-6k instructions a call, is only a script's.
local function refuse_when_full() if not IN_LIBRARY then redis.call('SETRANGE', oom_guard, 0, '') end end
local function run_when_full() if not IN_LIBRARY then redis.call('DEL', oom_guard) end end

-- A lean job (a plain standalone job: no delay, deadline or unique key) is queued as its stream entry
-- alone, fields t (task), p (payload), o (options, when any) and l (its limits, when any: the options'
-- `lim` kept apart, see enqueue.lua lean_split; entries written before hold them in `o`), with no record: its id names the entry,
-- QUEUE.LEVEL.ENTRY_ID (runtime/store/lean.py mirrors this). Its first attempt needs no record either: the
-- delivery of the entry to a worker (XREADGROUP) starts it, with the token '@' .. entry id, and the entry
-- pending under that worker fences it (the finish's XACK says whether it still was). A record is made from
-- the entry only when something needs one (materialize): a cancel, a move (reprioritize, aging), recovery,
-- a heartbeat of an attempt that runs past one beat, an end other than success. From then on the record
-- wins, as for any job. So a lean job has a record with a state only once its entry was deleted or moved,
-- while its delivered first attempt runs (state running, token '@' .. entry id), once it ended, or while it
-- is queued with a dependent (depends_on: the record lists it; the start then writes the record as for any
-- job). Someone waiting for it (watch.lua) only flags it: a record with `w` and no state.
local function lean_id(q, p, eid) return q .. '.' .. p .. '.' .. eid end
local LEAN_ID = '^(.+)%.(' .. LEVEL .. ')%.(%d+%-%d+)$'  -- a constant: built once, not at every parse
local function lean_parts(id)
  return string.match(id, LEAN_ID)
end
-- The queue, level, entry id and stream key of the lean job whose record key is `k` (prefix:job:ID) when
-- `token` is its first attempt's ('@' .. entry id), else nil: what lean_parts and stream_key give, without
-- LEAN_ID's match (its '.+' backtracks over the id, and its three captures are new strings: ~9k instructions,
-- callgrind) at every lean success: the entry id is the token's, the key's head (prefix:job:QUEUE.LEVEL) is
-- parsed once a call (lean_places), and the id itself is not needed (finish_many's short form sends none).
local function lean_first(k, token)
  local eid = string.sub(token, 2)
  local cut = #k - #eid
  if cut < #prefix + 7 or string.byte(k, cut) ~= 46 or string.find(k, eid, cut + 1, true) ~= cut + 1 then
    return nil
  end
  if not string.find(eid, '^%d+%-%d+$') then return nil end
  local head = string.sub(k, 1, cut - 1)
  local places = lean_places
  if not places then places = {}; lean_places = places end
  local place = places[head]
  if place == nil then
    local q, p = string.match(string.sub(head, #prefix + 6), '^(.+)%.(' .. LEVEL .. ')$')
    place = q and {q, p, stream_key(q, p)} or false
    places[head] = place
  end
  if not place then return nil end
  return place[1], place[2], eid, place[3]
end
local function lean_id_at(stream, eid)
  local q, p = string.match(string.sub(stream, #prefix + 4), '^(.+):(' .. LEVEL .. ')$')
  if not q then return nil end
  return lean_id(q, p, eid)
end
local function lean_token(eid) return '@' .. eid end

-- The job a stream entry stands for: its `j` field, or the id a lean entry's place gives (nil: neither).
local function entry_job(stream, eid, fields)
  local lean = false
  for i = 1, #fields, 2 do
    if fields[i] == 'j' then return fields[i + 1] end
    if fields[i] == 't' then lean = true end
  end
  if lean then return lean_id_at(stream, eid) end
  return nil
end

-- The worker an entry was delivered to and how long ago (ms), or nil when it is not pending (not read yet,
-- or no consumer group yet).
local function holder_of(stream, eid)
  local rows = redis.pcall('XPENDING', stream, GROUP, eid, eid, 1)
  if type(rows) ~= 'table' or rows.err or not rows[1] then return nil end
  return rows[1][2], tonumber(rows[1][3])
end

local function clock_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The concurrency slots (a record's `lh`, limits.lua) a lean job's delivered first attempt holds: its start
-- took one of each concurrency limit in its options, or parked it (and a parked job's entry is gone). nil
-- when it has none. Giving back a slot the attempt never took (read, then its worker died) is a no-op.
local function lean_held(opts)
  if not opts or not string.find(opts, '"lim"', 1, true) then return nil end
  local held
  for _, l in ipairs(cjson.decode(opts).lim or {}) do
    if l.c then
      local line = l.n .. '|' .. (l.k or '') .. '\t' .. l.c
      held = held and (held .. '\n' .. line) or line
    end
  end
  return held
end

-- A lean entry's options as one JSON text (a record's `opts`): `o`, with its `l` put back as `lim` (an entry
-- written before `l` holds them in `o`). nil: none.
local function lean_opts(o, l)
  if not l then return o end
  if not o or o == '' or o == '{}' then return '{"lim":' .. l .. '}' end
  return string.sub(o, 1, -2) .. ',"lim":' .. l .. '}'
end

-- What the record of a lean job made from its entry holds: state queued (its entry kept in place, so a start
-- finds it as its own), or, when the entry was delivered, state running: its first attempt, under the worker
-- it was delivered to since the delivery, with that worker's lease (its registry record's `lease`; none
-- when the worker is gone, so recovery takes it back) and the slots its limits took (lean_held). Returns
-- the record's fields as a table, or nil.
local function lean_record(q, p, eid, fields, holder, idle)
  local f = {}
  for i = 1, #fields, 2 do f[fields[i]] = fields[i + 1] end
  if not f.t then return nil end
  local rec = {state = 'queued', task = f.t, payload = f.p or '', queue = q, prio = p, entry = eid,
    enqueued = string.match(eid, '^(%d+)'), opts = lean_opts(f.o, f.l)}
  if holder then
    local since = clock_ms() - (idle or 0)
    local lease = tonumber(redis.call('HGET', prefix .. ':worker:' .. holder, 'lease') or '') or 0
    rec.state, rec.worker, rec.started, rec.lease_until = 'running', holder, since, since + lease
    rec.lh = lean_held(rec.opts)
  end
  return rec
end

-- The record fields of `rec` (see lean_record) as a flat HSET list, `more` appended.
local function lean_fields(rec, more)
  local out = {'state', rec.state, 'task', rec.task, 'payload', rec.payload, 'queue', rec.queue, 'prio', rec.prio,
    'entry', rec.entry, 'enqueued', rec.enqueued}
  if rec.opts then out[#out + 1] = 'opts'; out[#out + 1] = rec.opts end
  if rec.worker then
    for _, v in ipairs({'attempt', 1, 'token', lean_token(rec.entry), 'worker', rec.worker, 'started', rec.started,
      'lease_until', rec.lease_until, 'stream', stream_key(rec.queue, rec.prio)}) do out[#out + 1] = v end
    if rec.lh then out[#out + 1] = 'lh'; out[#out + 1] = rec.lh end
  end
  for i = 1, #more do out[#out + 1] = more[i] end
  return out
end

-- The record of a lean job known by its id alone, written now from the entry the id names (queued, or
-- running when delivered: see lean_record). Returns its fields, or nil when there is no such entry.
local function materialize(id)
  local q, p, eid = lean_parts(id)
  if not q then return nil end
  local stream = stream_key(q, p)
  local e = redis.call('XRANGE', stream, eid, eid)[1]
  if not e or entry_job(stream, eid, e[2]) ~= id then return nil end
  local rec = lean_record(q, p, eid, e[2], holder_of(stream, eid))
  if rec then redis.call('HSET', job_key(id), unpack(lean_fields(rec, {}))) end
  return rec
end

-- A job's state, making a lean job's record first (callers that change a job need one). A lean job's record
-- made while it was queued (a dependent's, an older waiter's) whose entry, still in place, was delivered since
-- says `running` from now on: the delivery started it (a worker's blocking read runs it without a start
-- script), so nothing moves or cancels it as if it were still queued.
local function state_of(id)
  local k = job_key(id)
  local state = redis.call('HGET', k, 'state')
  if not state then
    local rec = materialize(id)
    if rec then state = rec.state end
  elseif state == 'queued' then
    local q, p, eid = lean_parts(id)
    if q and redis.call('HGET', k, 'entry') == eid then
      local stream = stream_key(q, p)
      local holder, idle = holder_of(stream, eid)
      if holder then
        local rec = lean_record(q, p, eid, {'t', ''}, holder, idle)
        redis.call('HSET', k, 'state', 'running', 'attempt', 1, 'token', lean_token(eid), 'worker', holder,
          'started', rec.started, 'lease_until', rec.lease_until, 'stream', stream)
        local lh = lean_held(redis.call('HGET', k, 'opts'))  -- the slots its start took, as materialize lists
        if lh then redis.call('HSET', k, 'lh', lh) end
        state = 'running'
      end
    end
  end
  return state
end

-- Put a job on its stream now; the job remembers its entry (a moved or cancelled entry is then stale).
-- `extra`: more record fields to write in the same HSET (field, value, …), or nil.
local function push_to(k, id, q, p, now, extra)
  local eid = redis.call('XADD', stream_key(q, p), '*', 'j', id)
  if extra then redis.call('HSET', k, 'state', 'queued', 'enqueued', txt(now), 'entry', eid, unpack(extra))
  else redis.call('HSET', k, 'state', 'queued', 'enqueued', txt(now), 'entry', eid) end
end

--#include flow_keys
--#include fair

-- A sub-flow job (record field `subflow`) that became ready runs no task: it waits in state `starting`, in
-- the :subflows outbox, until a worker's SubflowSteps (runtime/subflows.py) starts its child run
-- (subflow_start.lua); when the child ends it waits there again in state `collecting` until the worker
-- turns the child's end into its own (subflow_end.lua). Each step is fenced by the state, so repeating
-- one is harmless; a worker that dies in between leaves the id in the outbox for another.
-- (subflows_key, :subflows: bound per call, see bind)
local function start_subflow(k, id, now)
  redis.call('HSET', k, 'state', 'starting', 'enqueued', now)
  redis.call('ZADD', subflows_key, now, id)
  publish(wake_channel, now)
end

local function push(id, now)
  local k = job_key(id)
  local q, p, opts, subflow = unpack(redis.call('HMGET', k, 'queue', 'prio', 'opts', 'subflow'))
  if subflow then return start_subflow(k, id, now) end  -- a retry of a sub-flow job: a new child run
  make_ready(k, id, q, p, now, opts)
end

-- Wait in the delayed set until `due`; wake the promoters when this is earlier than what they sleep for.
local function delay_job(k, id, state, due)
  local first = redis.call('ZRANGE', delayed_key, 0, 0, 'WITHSCORES')
  if first[2] == nil or tonumber(first[2]) > due then publish(wake_channel, due) end
  redis.call('ZADD', delayed_key, due, id)
  redis.call('HSET', k, 'state', state, 'due', due)
end

-- A signal job (record field `signal`: its timeout in ms, 0 = none) that became ready runs no task: a payload
-- sent before it was reached (kept in the run's :signals hash) is its result at once; else it waits in
-- state `awaiting`, holding no worker, listed in the :awaiting index and, with a timeout, in the delayed
-- set until then (promote.lua fails it when due). Returns true when it ended at once.
local function await_signal(k, id, now, timeout)
  local run_id, name = unpack(redis.call('HMGET', k, 'run', 'name'))
  if not name and run_id then name = string.sub(id, #run_id + 2) end  -- (no name held: the id is RUN.NAME)
  local sk = run_key(run_id) .. ':signals'
  local kept = redis.call('HGET', sk, name)
  if kept then
    redis.call('HDEL', sk, name)
    redis.call('HSET', k, 'state', 'succeeded', 'result', kept, 'started', now, 'finished', now)
    return true
  end
  redis.call('HSET', k, 'state', 'awaiting', 'started', now)
  redis.call('ZADD', awaiting_key, now, id)
  if timeout > 0 then
    local first = redis.call('ZRANGE', delayed_key, 0, 0, 'WITHSCORES')
    if first[2] == nil or tonumber(first[2]) > now + timeout then publish(wake_channel, now + timeout) end
    redis.call('ZADD', delayed_key, now + timeout, id)
    redis.call('HSET', k, 'due', now + timeout)
  end
  return false
end

-- A signal job leaves the waiting indexes (delivered, timed out or cancelled).
local function stop_awaiting(id)
  redis.call('ZREM', awaiting_key, id)
  redis.call('ZREM', delayed_key, id)
end

-- A run job became ready: put it on its stream, or in the delayed set when it asks for a delay; a signal
-- job waits for its payload instead. Returns true when the job ended at once (a signal kept for it).
-- `known`: {delay_ms, deadline_ms, queue, prio, opts, signal} when the caller read them already (resolve).
local function schedule(id, now, known)
  local k = job_key(id)
  local f = known or redis.call('HMGET', k, 'delay_ms', 'deadline_ms', 'queue', 'prio', 'opts', 'signal', 'subflow')
  if f[6] then return await_signal(k, id, now, tonumber(f[6]) or 0) end
  if f[7] then start_subflow(k, id, now); return false end
  local delay = f[1] and tonumber(f[1]) or 0  -- (no tonumber, a C call, for none)
  local deadline = f[2] and tonumber(f[2]) or 0
  if delay > 0 then
    if deadline > 0 then redis.call('HSET', k, 'deadline_at', now + delay + deadline) end
    delay_job(k, id, 'scheduled', now + delay)
  elseif deadline > 0 then
    make_ready(k, id, f[3], f[4], now, f[5], {'deadline_at', now + deadline})
  else
    make_ready(k, id, f[3], f[4], now, f[5])
  end
  return false
end

local function status_holds(state, status)
  if status == 'succeeded' then return state == 'succeeded' end
  if status == 'failed' then return state == 'dead' end
  if status == 'skipped' then return state == 'skipped' or state == 'cancelled' end
  if status == 'done' then return TERMINAL[state] == true end
  return false
end

-- `ended`, `ended_state`: the job of the run that just ended (its name) and its state, which the caller knows
-- (on_terminal): not read again.
local function condition_holds(cond, run_id, ended, ended_state)
  if cond.status ~= nil then
    local name = cond.status[1]
    local state = name == ended and ended_state or redis.call('HGET', job_key(run_id .. '.' .. name), 'state')
    return status_holds(state, cond.status[2])
  end
  if cond['not'] ~= nil then return not condition_holds(cond['not'], run_id, ended, ended_state) end
  local all = cond['and'] or cond['all']
  if all ~= nil then
    for _, c in ipairs(all) do if not condition_holds(c, run_id, ended, ended_state) then return false end end
    return true
  end
  local any = cond['or'] or cond['any']
  if any ~= nil then
    for _, c in ipairs(any) do if condition_holds(c, run_id, ended, ended_state) then return true end end
    return false
  end
  if cond.lit ~= nil then return cond.lit == true end
  return false
end

-- All of a job's upstream jobs are terminal: run it if its data and `after` condition hold,
-- else skip it. Returns true when it was skipped, or ended at once (so the caller propagates that).
-- `run_id`: its run (the job's id is RUN.NAME); `ended`, `ended_state`: the upstream job that just ended
-- (its name in the run) and its state, when the caller knows them (on_terminal): not read again.
-- `listed`: how its upstream job listed it, {name[, after]} for one with no data dependency, delay,
-- deadline, options, signal or sub-flow and that `after` (runs.py _listed: none changes while it waits), so
-- that only its state, queue and level are read; nil: its record says.
local function resolve(id, now, run_id, ended, ended_state, listed)
  local k = job_key(id)
  if listed then
    local f = redis.call('HMGET', k, 'state', 'queue', 'prio')
    if f[1] ~= 'waiting' then return false end  -- cancelled while it waited: already counted
    local after = listed[2]
    if after and not condition_holds(after, run_id, ended, ended_state) then
      redis.call('HSET', k, 'state', 'skipped', 'finished', now, 'reason', 'after condition cannot hold')
      return true
    end
    return schedule(id, now, {false, false, f[2], f[3], false, false, false})
  end
  local f = redis.call('HMGET', k, 'state', 'data_deps', 'after', 'delay_ms', 'deadline_ms', 'queue', 'prio',
    'opts', 'signal', 'subflow')
  local state, data_deps, after = f[1], f[2], f[3]
  if state ~= 'waiting' then return false end  -- cancelled while it waited: already counted
  if data_deps and data_deps ~= '[]' then
    for _, dep in ipairs(decoded(data_deps)) do
      local up = dep == ended and ended_state or redis.call('HGET', job_key(run_id .. '.' .. dep), 'state')
      if up ~= 'succeeded' then
        redis.call('HSET', k, 'state', 'skipped', 'finished', now, 'reason', 'upstream ' .. dep .. ' did not succeed')
        return true
      end
    end
  end
  if after and after ~= '' and not condition_holds(decoded(after), run_id, ended, ended_state) then
    redis.call('HSET', k, 'state', 'skipped', 'finished', now, 'reason', 'after condition cannot hold')
    return true
  end
  return schedule(id, now, {f[4], f[5], f[6], f[7], f[8], f[9], f[10]})
end

-- Standalone dependencies (`enqueue(..., depends_on=[ids])`): a dependent's record waits (state
-- `waiting`, `deps_left` of its `after_deps` not ended yet); each dependency lists it in `dependent_jobs`
-- (JSON ids). When the last one ends it is queued (or delayed), or skipped when one did not succeed and it
-- does not allow failures (`after_policy` = done). A skipped dependent is kept as long as a finished job
-- (keep_results_ms). While it waits its id is in after_waiting_key, so the inspector can list it.
local function resolve_after(id, now)
  local k = job_key(id)
  local f = redis.call('HMGET', k, 'state', 'after_deps', 'after_policy', 'delay_ms', 'deadline_ms', 'queue', 'prio',
    'opts')
  if f[1] ~= 'waiting' then return false end
  redis.call('ZREM', after_waiting_key, id)
  if f[3] ~= 'done' then
    for _, dep in ipairs(cjson.decode(f[2] or '[]')) do
      local state = redis.call('HGET', job_key(dep), 'state')
      if state ~= 'succeeded' then
        redis.call('HSET', k, 'state', 'skipped', 'finished', now,
          'reason', 'dependency ' .. dep .. ' did not succeed (' .. (state or 'gone') .. ')')
        redis.call('PEXPIRE', k, keep_results_ms())
        return true
      end
    end
  end
  schedule(id, now, {f[4], f[5], f[6], f[7], f[8]})
  return false
end

-- A job with standalone dependents ended: release each (a worklist, so a long chain of skips never
-- recurses), waking whoever waits for a dependent that was skipped.
local function release_after(now, list)
  local work = {list}
  while #work > 0 do
    for _, dep in ipairs(cjson.decode(table.remove(work))) do
      local dk = job_key(dep)
      if redis.call('HGET', dk, 'state') == 'waiting' and redis.call('HINCRBY', dk, 'deps_left', '-1') <= 0 then
        if resolve_after(dep, now) then
          local w, more = unpack(redis.call('HMGET', dk, 'w', 'dependent_jobs'))
          if w then publish(done_channel, dep) end
          if more and more ~= '' then work[#work + 1] = more end
        end
      end
    end
  end
end

-- Why a job cannot depend on `deps` (nil: it can). A queued lean dependency gets its record here: it is
-- what lists its dependents.
local function deps_problem(deps, own)
  if type(deps) ~= 'table' or #deps == 0 then return 'depends_on must list job ids' end
  for _, dep in ipairs(deps) do
    if type(dep) ~= 'string' or dep == '' or string.find(dep, '[{}]') then return 'bad dependency id' end
    if dep == own then return 'a job cannot depend on itself' end
    if not state_of(dep) then return 'dependency ' .. dep .. ' does not exist' end
  end
  return nil
end

-- Write a dependent's record (`fields`: task, payload, queue, prio, opts …) waiting for its dependencies;
-- when they have all ended already, it is queued (or delayed, or skipped) at once.
local function wait_for_deps(k, id, fields, o, now)
  local left = 0
  for _, dep in ipairs(o.dep) do
    local dk = job_key(dep)
    if not TERMINAL[redis.call('HGET', dk, 'state')] then
      left = left + 1
      local list = redis.call('HGET', dk, 'dependent_jobs')
      local ids = (list and list ~= '') and cjson.decode(list) or {}
      ids[#ids + 1] = id
      redis.call('HSET', dk, 'dependent_jobs', cjson.encode(ids))
    end
  end
  redis.call('HSET', k, 'state', 'waiting', 'enqueued', now, 'deps_left', left, 'after_deps', cjson.encode(o.dep),
    'delay_ms', o.d or 0, 'deadline_ms', o.dl or 0, unpack(fields))
  if o.da then redis.call('HSET', k, 'after_policy', o.da) end
  redis.call('ZADD', after_waiting_key, now, id)
  if left == 0 then resolve_after(id, now) end
end

local subflow_child_ended  -- (below) a child run's end hands over to its parent's sub-flow job

local function finish_run(rk, now)
  local open, failed, cancelled, run_cancel, state = unpack(redis.call('HMGET', rk, 'open', 'failed', 'cancelled',
    'cancel', 'state'))
  if tonumber(open) > 0 or state ~= 'running' then return end
  local final = 'succeeded'
  if run_cancel == '1' or tonumber(cancelled or '0') > 0 then final = 'cancelled'
  elseif tonumber(failed or '0') > 0 then final = 'failed' end
  redis.call('HSET', rk, 'state', final, 'finished', now)
  redis.call('RPUSH', rk .. ':done', final)
  redis.call('EXPIRE', rk .. ':done', 86400)
  local parent_job = redis.call('HGET', rk, 'parent_job')
  if parent_job then subflow_child_ended(parent_job, string.sub(rk, #prefix + 6), final, now) end
end

local on_terminal
local finish_attempt  -- (below) start_entry ends a lean job cancelled before it started

-- A fan-out child ended: when it was the last one, the parent ends (its result is the children's
-- results in item order; it succeeds only when every child did).
local function child_done(parent, now)
  local pk = job_key(parent)
  if redis.call('HINCRBY', pk, 'children_left', -1) > 0 then return end
  local n = tonumber(redis.call('HGET', pk, 'children') or '0')
  local bodies, failed, named = {}, 0, {}
  for i = 0, n - 1 do
    local state, result = unpack(redis.call('HMGET', job_key(parent .. '.' .. i), 'state', 'result'))
    if state == 'succeeded' then
      -- children results are JSON payloads ("J-|body"): the list is their bodies joined
      local body = result and string.match(result, '^J%-%d*|(.*)$') or 'null'
      table.insert(bodies, body)
    else
      failed = failed + 1
      if #named < 20 then named[#named + 1] = {item = i, id = parent .. '.' .. i, state = state or 'missing'} end
      table.insert(bodies, 'null')
    end
  end
  if failed == 0 then
    redis.call('HSET', pk, 'state', 'succeeded', 'result', 'J-|[' .. table.concat(bodies, ',') .. ']',
      'finished', now, 'token', '')
  elseif redis.call('HGET', pk, 'cancel') == '1' then
    redis.call('HSET', pk, 'state', 'cancelled', 'finished', now, 'token', '', 'reason', 'cancelled')
  else
    local listed = {}
    for _, f in ipairs(named) do listed[#listed + 1] = f.item .. ' (' .. f.state .. ')' end
    local more = failed > #named and (', and ' .. (failed - #named) .. ' more') or ''
    redis.call('HSET', pk, 'state', 'dead', 'finished', now, 'token', '', 'error',
      cjson.encode({type = 'FanOutFailed', items = named,
        message = failed .. ' of ' .. n .. ' items did not succeed: item ' .. table.concat(listed, ', ') .. more}))
  end
  on_terminal(parent, now)
end

-- A job reached a terminal state: wake whoever waits for it, count it in its run (or its fan-out
-- parent), release its dependents (each exactly once: only the decrement that reaches zero resolves
-- a dependent), finish the run at the end.
-- `known`: {run, w, replayed, parent, dependents, state} when the caller read them already (finish_attempt).
on_terminal = function(id, now, known)
  local k = job_key(id)
  local run_id, waiter, replayed, parent, after_me
  if known then run_id, waiter, replayed, parent, after_me = known[1], known[2], known[3], known[4], known[7]
  else run_id, waiter, replayed, parent, after_me = unpack(redis.call('HMGET', k, 'run', 'w', 'replayed', 'parent',
    'dependent_jobs')) end
  if waiter then publish(done_channel, id) end
  if after_me and after_me ~= '' then release_after(now, after_me) end
  if replayed == '1' then return end
  if parent and parent ~= '' then return child_done(parent, now) end
  if not run_id or run_id == '' then return end
  local rk = run_key(run_id)
  -- (a worklist kept by hand, a numeric loop over the dependents: table.remove, ipairs and its iterator
  -- are C calls, ~1.4k instructions each here, callgrind)
  local worklist, n = {id}, 1
  local open = 1
  while n > 0 do
    local current = worklist[n]
    worklist[n] = nil
    n = n - 1
    local state, dependents
    if current == id and known and known[6] then state, dependents = known[6], known[5]
    else
      local f = redis.call('HMGET', job_key(current), 'state', 'dependents')
      state, dependents = f[1], f[2]
    end
    open = redis.call('HINCRBY', rk, 'open', '-1')
    if state == 'dead' then redis.call('HINCRBY', rk, 'failed', 1) end
    if state == 'cancelled' then redis.call('HINCRBY', rk, 'cancelled', 1) end
    if dependents and dependents ~= '[]' then
      local ended  -- its name (the id is RUN.NAME), made when a dependent is resolved
      -- a name, or {name[, after]} (see resolve); indexing a string gives nil, where type() is a C call
      local list = decoded(dependents)
      for j = 1, #list do
        local name = list[j]
        local listed = name[1] and name
        if listed then name = listed[1] end
        local dep = run_id .. '.' .. name
        if redis.call('HINCRBY', job_key(dep), 'deps_left', '-1') == 0 then
          ended = ended or string.sub(current, #run_id + 2)
          if resolve(dep, now, run_id, ended, state, listed) then n = n + 1; worklist[n] = dep end
        end
      end
    end
  end
  if open <= 0 then finish_run(rk, now) end  -- jobs still open: the run goes on
end

-- A child run ended (finish_run): its parent's sub-flow job, if it still waits for this child, ends
-- cancelled when it was being cancelled, or goes back to the outbox (`collecting`) for a worker to read
-- the child's outputs or apply the job's retry policy (subflow_end.lua).
subflow_child_ended = function(parent_job, child_id, final, now)
  local pk = job_key(parent_job)
  local state, child, cancel = unpack(redis.call('HMGET', pk, 'state', 'child', 'cancel'))
  if state ~= 'child' or child ~= child_id then return end
  if cancel == '1' then
    redis.call('HSET', pk, 'state', 'cancelled', 'finished', now, 'reason', 'cancelled', 'child_state', final)
    return on_terminal(parent_job, now)
  end
  redis.call('HSET', pk, 'state', 'collecting', 'child_state', final)
  redis.call('ZADD', subflows_key, now, parent_job)
  publish(wake_channel, now)
end

-- A run's job records as the caller sent them, from ARGV[i] on (store/calls.py run_jobs): `#N`, then each
-- job's count of field/value items and those items (`name`, `deps_left` first), or (an older tqflow, a
-- cluster outbox's hand-off written by one) one JSON list of objects. Returns {name, deps_left, first,
-- last} a job, over the list that holds its items (ARGV itself, or the JSON's items laid flat).
local function run_jobs(argv, i)
  local text = argv[i] or '[]'
  local list = {}
  if string.byte(text, 1) == 35 then  -- '#'
    i = i + 1
    for j = 1, tonumber(string.sub(text, 2)) do
      local m = tonumber(argv[i])
      -- its record holds what follows its name (the id, RUN.NAME, says it: one field fewer a job)
      list[j] = {argv[i + 2], argv[i + 4], i + 3, i + m}
      i = i + m + 1
    end
    return list, argv
  end
  local flat = {}
  for j, job in ipairs(cjson.decode(text)) do
    local first = #flat + 1
    for name, value in pairs(job) do flat[#flat + 1] = name; flat[#flat + 1] = value end
    list[j] = {job.name, job.deps_left, first, #flat}
  end
  return list, flat
end

-- Create a run and its jobs, and start the jobs that wait for nothing (submit_run.lua, subflow_start.lua).
-- `jobs`, `items`: run_jobs'. `now_text`: now as the caller's ARGV string (a Lua number passed to
-- redis.call is formatted with sprintf, ~2,200 instructions, callgrind; the job records' numbers come as
-- strings too: runs.job_records). A job's hash holds `run`, `state`, `created`, then its fields in the
-- order sent (the hot ones first: each lookup in a small hash is a linear scan).
local function create_run(rk, runs_index, now, run_id, run, jobs, now_text, items)
  local fields = {}
  for name, value in pairs(run) do table.insert(fields, name); table.insert(fields, value) end
  now_text = now_text or now
  redis.call('HSET', rk, 'state', 'running', 'created', now_text, 'open', #jobs, 'failed', '0', unpack(fields))
  redis.call('ZADD', runs_index, now_text, run_id)
  local roots = {}
  for _, job in ipairs(jobs) do
    local id = run_id .. '.' .. job[1]
    redis.call('HSET', job_key(id), 'run', run_id, 'state', 'waiting', 'created', now_text,
      unpack(items, job[3], job[4]))
    if tonumber(job[2]) == 0 then table.insert(roots, id) end
  end
  for _, id in ipairs(roots) do
    if schedule(id, now) then on_terminal(id, now) end
  end
  if #jobs == 0 then
    redis.call('HSET', rk, 'state', 'succeeded', 'finished', now)
    redis.call('RPUSH', rk .. ':done', 'succeeded')
    redis.call('EXPIRE', rk .. ':done', 86400)
    local parent_job = run.parent_job
    if parent_job then subflow_child_ended(parent_job, run_id, 'succeeded', now) end
  end
  return #roots
end

--#include limits

-- Standalone jobs keep their record for a while after they end (dead ones stay for the dead-letter queue).
-- `ttl_text`: the same ttl as the caller's ARGV string, when it has one: a Lua number passed to redis.call is
-- formatted with sprintf (~2,000 instructions; callgrind), a string is passed as it is.
local function expire_finished(k, state, ttl, in_run, ttl_text)
  if state ~= 'dead' and ttl and ttl > 0 and not in_run then
    redis.call('PEXPIRE', k, ttl_text or ttl)
  end
end

-- Cancel a job that is not running (queued, scheduled, retrying, waiting). Returns true when it did.
local function cancel_idle(id, now, reason)
  local k = job_key(id)
  if not redis.call('HGET', k, 'state') then materialize(id) end
  local state, q, p, entry, limited, lh, fq, ff = unpack(redis.call('HMGET', k, 'state', 'queue', 'prio', 'entry',
    'limited', 'lh', 'fq', 'ff'))
  if state == 'queued' and fq == '1' then
    fair_remove(q, p, id, redis.call('HGET', k, 'opts'))
  elseif state == 'queued' then
    redis.call('XDEL', stream_key(q, p), entry)
    if ff and ff ~= '' then fair_taken(q, ff, now) end
  elseif state == 'scheduled' or state == 'retrying' then
    redis.call('ZREM', delayed_key, id)
  elseif state == 'awaiting' then
    stop_awaiting(id)
  elseif state == 'starting' or state == 'collecting' then
    redis.call('ZREM', subflows_key, id)
  elseif state == 'limited' then
    redis.call('LREM', lim_base(limited) .. ':w', 1, id)
  elseif state ~= 'waiting' then
    return false
  end
  if state == 'waiting' then redis.call('ZREM', after_waiting_key, id) end
  release_held(k, id, now, lh)  -- a grant's slot
  redis.call('HSET', k, 'state', 'cancelled', 'finished', now, 'reason', reason)
  on_terminal(id, now)
  -- a standalone job is kept as long as a finished one (a run's jobs go with the run; an item with its parent)
  local run_id, parent = unpack(redis.call('HMGET', k, 'run', 'parent'))
  if (not run_id or run_id == '') and (not parent or parent == '') then redis.call('PEXPIRE', k, keep_results_ms()) end
  return true
end

-- Make a delivered stream entry this worker's attempt (a new token), or drop a stale entry (its job was
-- moved, cancelled or already handled). Returns the attempt as a flat list, or nil.
-- The list: id, token, attempt, task, payload, opts, queue, prio, enqueued, deadline_at, run info (false; a run
-- job's its lines, or those and its outputs, see below: store/records.py run_context reads it; for a fan-out
-- item, JSON of its parent, run and flow: {parent, of_run, flow})
-- A stream entry naming no job, or a job that does not exist, is dead-lettered under its own record
-- (`malformed-STREAM-ENTRY`) with the reason, so bad input is visible in the DLQ instead of vanishing (F8).
local function reject_entry(id, stream, entry, now)
  local name = 'malformed-' .. string.match(stream, '[^:]*:[^:]*$'):gsub(':', '-') .. '-' .. entry
  local why = 'stream entry has no job id (field j)'
  if id then why = 'stream entry names job ' .. string.sub(id, 1, 200) .. ', which does not exist' end
  redis.call('HSET', job_key(name), 'state', 'dead', 'task', '', 'attempt', 0, 'finished', now, 'stream', stream,
    'error', cjson.encode({type = 'MalformedEntry', message = why}))
  redis.call('ZADD', dlq_key, now, name)
end

-- `fields`: the entry's fields when the caller read them (fetch.lua); with `id` nil too (start_many), they
-- are read here. A lean entry just delivered to this worker is its job's first attempt, and nothing is
-- written (see lean_id): the attempt is the entry's, the row is made from the fields.
local started_row  -- (below)
local function start_entry(id, stream, entry, worker, token, now, lease, fields)
  local read_here = fields ~= nil  -- delivered by this script's own XREADGROUP (fetch.lua), not before it
  if id == nil then
    local e = redis.call('XRANGE', stream, entry, entry)[1]
    if not e then  -- deleted since it was read: nothing to start
      redis.call('XACK', stream, GROUP, entry)
      return nil
    end
    fields = e[2]
    id = entry_job(stream, entry, fields)
    if id == '' then id = nil end
  end
  local k = job_key(id or '')
  -- A lean entry read by this script (XREADGROUP '>': delivered for the first time, every re-queue writes a
  -- `j` entry) is its job's first attempt, with or without a record: a record it may have was made while it
  -- was queued with its entry in place (a waiter's flag, a dependent's record in state queued), and the paths
  -- that meet it later (state_of, finish_attempt) read the delivery as the start, as for an idle worker's
  -- hand-off (worker/fetcher.py), so nothing here reads it. An entry a worker read before this script
  -- (start_many) may have met a cancel or recovery since: it starts so only with no record (HEXISTS). A
  -- limited one takes its slots and tokens here and stays lean (its entry, pending, fences the attempt; a
  -- record made later lists the slots from its options: lean_held), or it is parked, which writes its
  -- record (limits.lua).
  -- (a `j` entry, as a run job's, is never its job's lean entry: no lean_id_at, whose match costs ~5k)
  if fields and id ~= nil and fields[1] ~= 'j' and id == lean_id_at(stream, entry)
    and (read_here or redis.call('HEXISTS', k, 'state') == 0) then
    local q, p = lean_parts(id)
    local rec = lean_record(q, p, entry, fields)
    if rec then
      if rec.opts and string.find(rec.opts, '"lim"', 1, true) and not admit(k, id, rec.opts, nil, nil, now,
        now + lease, rec) then
        redis.call('XACK', stream, GROUP, entry)
        redis.call('XDEL', stream, entry)
        return nil
      end
      return {id, lean_token(entry), 1, rec.task, rec.payload, rec.opts or false, q, p, rec.enqueued, false, false}
    end
  end
  -- The record in one read. A job hash is a small listpack, where each field of an HMGET is a linear scan
  -- (a missing one, most of these, the whole hash): a run job's start looked up 25 fields. HGETALL walks it
  -- once (callgrind: bench/cost.py --only flow, docs/benchmarks.md).
  local h = {}
  local all = redis.call('HGETALL', k)
  for i = 1, #all, 2 do h[all[i]] = all[i + 1] end
  local f = {h.state or false, h.entry or false, h.task or false, h.payload or false, h.opts or false,
    h.queue or false, h.prio or false, h.enqueued or false, h.deadline_at or false, h.run or false,
    h.attempt or false, h.lg or false, h.lh or false, h.ff or false, h.parent or false, h.fan_out or false,
    h.token or false, h.cancel or false}
  local fresh  -- a limited lean job starting from the entry just read: its record is written below
  if id ~= nil and not f[1] then  -- a lean job with no record: made from its entry
    local rec
    if fields and fields[1] ~= 'j' and id == lean_id_at(stream, entry) then
      local q, p = lean_parts(id)
      rec = lean_record(q, p, entry, fields)
      fresh = rec
    else
      rec = materialize(id)  -- (start.lua, start_many: the entry was not read here)
    end
    if rec then f = {rec.state, rec.entry, rec.task, rec.payload, rec.opts or false, rec.queue, rec.prio,
      rec.enqueued, false, false, rec.worker and 1 or false, false, false, false, false, false,
      rec.worker and lean_token(rec.entry) or false, false} end
  end
  local state, current = f[1], f[2]
  if state == 'running' and current == entry and f[17] == lean_token(entry) then
    -- its delivered first attempt, whose record something made since the delivery (a cancel, recovery …)
    if f[18] == '1' then  -- cancelled before its body ran: it ends so, here
      finish_attempt(now, keep_results_ms(), id, lean_token(entry), 'cancelled', 'cancelled', 0, '')
      return nil
    end
    -- read before this script (start_many): nothing took its slots yet, the record's `lh` notwithstanding
    if not read_here and f[5] and string.find(f[5], '"lim"', 1, true) and not admit_delivered(k, id, f, now, lease) then
      redis.call('XACK', stream, GROUP, entry)
      redis.call('XDEL', stream, entry)
      return nil
    end
    return {id, lean_token(entry), 1, f[3], f[4], f[5], f[6], f[7], f[8], f[9], false}
  end
  if id == nil or state ~= 'queued' or current ~= entry then
    redis.call('XACK', stream, GROUP, entry)
    redis.call('XDEL', stream, entry)
    if id == nil or not state then reject_entry(id, stream, entry, now) end
    return nil
  end
  local attempt, attempt_text = 1, '1'  -- a first attempt: no record holds `attempt` before it
  if f[11] then
    attempt = tonumber(f[11])
    if not attempt then error('hash value is not an integer (attempt)') end  -- start_guarded dead-letters it
    attempt = attempt + 1
    attempt_text = txt(attempt)
  end
  local fed = f[14] and f[14] ~= ''
  local limited = f[5] and (not f[16] or f[16] == '') and string.find(f[5], '"lim"', 1, true)
  if not (fed or limited or fresh) then
    -- the common start: one HSET of its fields as they are (a table of them and its unpack cost ~3k more)
    redis.call('HSET', k, 'state', 'running', 'attempt', attempt_text, 'token', token, 'worker', worker,
      'started', txt(now), 'lease_until', txt(now + lease), 'stream', stream)
    return started_row(h, f, id, token, attempt, stream)
  end
  local running = {'state', 'running', 'attempt', attempt_text, 'token', token, 'worker', worker,
    'started', txt(now), 'lease_until', txt(now + lease), 'stream', stream}
  if fed then  -- fed by the fair share (fair.lua): its key's next job may take its place on the stream
    fair_taken(f[6], f[14], now)
    running[#running + 1] = 'ff'; running[#running + 1] = ''
  end
  -- limited: a slot of each limit, or it waits (limits.lua); a fan-out's limits are its items'
  if limited then
    if string.find(f[5], '"limx"', 1, true) then  -- a flow job's key that reads an upstream output
      f[5] = cjson.encode(flow_limits(cjson.decode(f[5]), f[10]))
      redis.call('HSET', k, 'opts', f[5])
    end
    local taken = admit(k, id, f[5], f[12], f[13], now, now + lease, fresh)
    if not taken then
      redis.call('XACK', stream, GROUP, entry)
      redis.call('XDEL', stream, entry)
      if fed then redis.call('HSET', k, 'ff', '') end
      return nil
    end
    for i = 1, #taken do running[#running + 1] = taken[i] end
  end
  if fresh then redis.call('HSET', k, unpack(lean_fields(fresh, running)))
  else redis.call('HSET', k, unpack(running)) end
  return started_row(h, f, id, token, attempt, stream)
end

-- start_entry's row of an attempt it started (`h`: the record as read, `f`: its fields start_entry reads).
started_row = function(h, f, id, token, attempt, stream)
  local info = false
  local run_id = f[10]
  if run_id then
    local starts = run_starts
    if not starts then starts = {}; run_starts = starts end
    local run_f = starts[run_id]  -- a run's params and creation do not change: read once a call
    if not run_f then
      run_f = redis.call('HMGET', run_key(run_id), 'params', 'created')
      starts[run_id] = run_f
    end
    -- The run context as one text, a newline, then its parts a line each (store/records.py run_context
    -- reads it): a cjson.encode of it, or a list of its parts, cost ~15k instructions more a start
    -- (callgrind: escaping the JSON texts, ~1.5k a reply item, more for a nested list). No part holds a
    -- newline: JSON escapes one in a string, and neither a run id, a job's name, a flow's nor a stream key
    -- has one (a hand-made one that does makes the parts too many: the worker dead-letters the attempt as
    -- malformed). The last three are for its end, which the worker sends them back to (finish_many.lua): the
    -- stream and entry this start wrote, and its dependents, which the end then does not read. Its upstream
    -- outputs (a result can hold anything) follow the text as items, name and result (false: none) a data
    -- dependency.
    info = '\n' .. run_id .. '\n' .. (h.name or '') .. '\n' .. (h.flow or '') .. '\n' .. (h.args or '') .. '\n'
      .. (h['when'] or '') .. '\n' .. (h.fan_out or '') .. '\n' .. (h.unique or '') .. '\n' .. (run_f[1] or '')
      .. '\n' .. (run_f[2] or '') .. '\n' .. stream .. '\n' .. f[2] .. '\n' .. (h.dependents or '')
    if h.data_deps and h.data_deps ~= '[]' then
      local outputs = {info}
      for _, dep in ipairs(decoded(h.data_deps)) do
        outputs[#outputs + 1] = dep
        outputs[#outputs + 1] = redis.call('HGET', job_key(run_id .. '.' .. dep), 'result') or false
      end
      info = outputs
    end
  elseif f[15] then  -- a fan-out item: no run context, but its parent, run and flow (logs, its result's codec)
    info = cjson.encode({parent = f[15], of_run = h.of_run or '', flow = h.flow or ''})
  end
  return {id, token, attempt, f[3], f[4], f[5], f[6], f[7], f[8], f[9], info}
end

-- start_entry, guarded: a record or entry whose fields make a Redis command or cjson raise (an `attempt`
-- that is not an integer, `data_deps` that is not JSON …) no longer fails the whole fetch, batch after batch,
-- forever (F15): the entry is acked and deleted, and the job (or the entry, under `malformed-…`) is
-- dead-lettered with the error as its reason. Errors that say Redis itself cannot write now (OOM, a
-- replica, a failover …) are raised again: they say nothing about the job.
local TRANSIENT = {'OOM', 'READONLY', 'NOREPLICAS', 'MASTERDOWN', 'CLUSTERDOWN', 'TRYAGAIN', 'BUSY', 'LOADING',
  'MOVED', 'ASK', 'CROSSSLOT'}
local function start_guarded(id, stream, entry, worker, token, now, lease, fields)
  local ok, job = pcall(start_entry, id, stream, entry, worker, token, now, lease, fields)
  if ok then return job end
  local why = type(job) == 'table' and (job.err or cjson.encode(job)) or tostring(job)
  for _, word in ipairs(TRANSIENT) do
    if string.sub(why, 1, #word) == word then error(job, 0) end
  end
  redis.call('XACK', stream, GROUP, entry)
  redis.call('XDEL', stream, entry)
  local err = cjson.encode({type = 'MalformedRecord', message = 'the job could not start: ' .. string.sub(why, 1, 300)})
  local k = id and job_key(id)
  if not k or redis.call('EXISTS', k) == 0 then
    k = job_key('malformed-' .. string.match(stream, '[^:]*:[^:]*$'):gsub(':', '-') .. '-' .. entry)
    id = nil
  end
  redis.call('HSET', k, 'state', 'dead', 'error', err, 'finished', now, 'token', '', 'worker', '')
  redis.call('ZADD', dlq_key, now, string.sub(k, #prefix + 6))
  if id then pcall(on_terminal, id, now) end  -- its run counts it, when its record lets it
  return nil
end

-- Cancel one job whatever its state: idle jobs end now; a running one (or a fan-out's running children)
-- is flagged and announced on the cancel channel, and ends as cancelled when its worker stops it.
-- Returns cancelled | cancelling | <its end state> | missing
local cancel_job
cancel_job = function(id, now, reason)
  local k = job_key(id)
  local state = state_of(id)
  if not state then return 'missing' end
  if state == 'running' then
    redis.call('HSET', k, 'cancel', '1')
    publish(prefix .. ':cancel', id)
    return 'cancelling'
  end
  if state == 'child' then  -- a sub-flow job: cancel its child run; the child's end cancels the job
    redis.call('HSET', k, 'cancel', '1')
    local child = redis.call('HGET', k, 'child')
    local ck = run_key(child)
    if redis.call('HGET', ck, 'state') == 'running' then
      redis.call('HSET', ck, 'cancel', '1')
      for _, name in ipairs(cjson.decode(redis.call('HGET', ck, 'names') or '[]')) do
        cancel_job(child .. '.' .. name, now, 'parent run cancelled')
      end
    end
    if redis.call('HGET', k, 'state') == 'child' then return 'cancelling' end
    return 'cancelled'
  end
  if state == 'fanout' then
    redis.call('HSET', k, 'cancel', '1')
    local n = tonumber(redis.call('HGET', k, 'children') or '0')
    for c = 0, n - 1 do
      local child = id .. '.' .. c
      local ck = job_key(child)
      if redis.call('HGET', ck, 'state') == 'running' then
        redis.call('HSET', ck, 'cancel', '1')
        publish(prefix .. ':cancel', child)
      else
        cancel_idle(child, now, reason)
      end
    end
    if redis.call('HGET', k, 'state') == 'fanout' then return 'cancelling' end
    return 'cancelled'
  end
  if cancel_idle(id, now, reason) then return 'cancelled' end
  return state
end

-- The result a packed end record holds (store/endrow.py: between the 5th and 6th separators the arguments'
-- length, then the arguments, then the result), for an end that does not write `ran` (its job has a record).
local function ran_result(ran)
  local at = 0
  for _ = 1, 5 do at = string.find(ran, '\31', at + 1, true) end
  local stop = string.find(ran, '\31', at + 1, true)
  return string.sub(ran, stop + 1 + tonumber(string.sub(ran, at + 1, stop - 1)))
end

-- The end of a lean job's first attempt that has no record (see lean_id). No record is its fence: whatever
-- takes a delivered entry away (recovery, hand-back, a cancel, a move) writes the record first, and from then
-- on the token of the record decides. A success writes the end (result, times, worker, task, and the
-- arguments and options from the entry; the queue, level and enqueue time are the id's); any other end first
-- makes the running record from the entry (still pending here), then ends as any attempt does.
-- `id` may be nil (finish_many's short form): made from `k` where it is needed.
local function finish_first(now, ttl, id, token, outcome, payload, due, dlq, acks, by, waiter, k)
  local q, p, eid, stream = lean_first(k, token)
  if not q then return 'stale' end
  if outcome ~= 'succeeded' then
    id = id or string.sub(k, #prefix + 6)
    local e = redis.call('XRANGE', stream, eid, eid)[1]
    local holder, idle = holder_of(stream, eid)
    if not e or not holder or (by.worker ~= '' and holder ~= by.worker) then return 'stale' end
    local rec = lean_record(q, p, eid, e[2], holder, idle)
    if not rec then return 'stale' end
    rec.started = by.started or rec.started
    redis.call('HSET', k, unpack(lean_fields(rec, {})))
    return finish_attempt(now, ttl, id, token, outcome, payload, due, dlq, acks, by)
  end
  -- its arguments and options stay readable (job views): the worker sends them back (by.args, by.opts: what
  -- the fetch gave it, see lean_end), or, when it did not (a large payload, finish.lua), they are read from
  -- the entry, before a lone finish deletes it; keep_result=False (options `nr`) with nobody waiting keeps
  -- nothing
  -- (by.ran: the whole end record packed by the worker's call, store/calls.py finish_many's short form, which
  -- holds the arguments and options too: nothing to read here)
  local args, sent, ran = by.args or '', by.opts, by.ran
  local ends = sent and sent ~= '' and (lim_ends and lim_ends[sent] or lean_end(sent))  -- (no call when known)
  local forget = ends and not waiter and ends.forget
  if args == '' and not forget and not ran then
    local e = redis.call('XRANGE', stream, eid, eid)[1]
    if e then
      local o, l
      for i = 1, #e[2], 2 do
        local name = e[2][i]
        if name == 'p' then args = e[2][i + 1] elseif name == 'o' then o = e[2][i + 1] elseif name == 'l' then
          l = e[2][i + 1] end
      end
      if not ends then ends = lean_end(lean_opts(o, l)) end
    end
  end
  if acks then
    local list = acks.ack[stream]
    if not list then list = {}; acks.ack[stream] = list end
    list[#list + 1] = eid
  else
    redis.call('XACK', stream, GROUP, eid)
    redis.call('XDEL', stream, eid)
  end
  local opts
  if ends then
    local lims = ends.lims
    if lims then  -- the slots its start took; one concurrency limit: its batched SREM's list, in place
      id = id or string.sub(k, #prefix + 6)
      local st = ends.m and lim_cached and lim_cached[ends.m]
      if st and st.give then
        local rem = st.rem
        rem[#rem + 1] = id
      else
        release_lean(id, lims, now)
      end
    end
    if forget then return 'succeeded' end  -- the entry's ack is the whole end
    opts = ends.opts  -- (limits its entry kept apart as `l` are not kept: no view shows them)
  end
  -- the times as the caller's strings where it sent them (by.now, by.ttl: no number formatting, see
  -- expire_finished)
  local finished = by.now or now
  if ran then
    -- the short form's record: its state as every record has it, the rest in one field `ran` (result,
    -- started, finished, worker, task, options and arguments; store/endrow.py, which store/records.py
    -- applies for every reader): 2 fields, not 9, which a listpack HSET pays for field by field (~13k
    -- instructions a job, callgrind)
    redis.call('HSET', k, 'state', 'succeeded', 'ran', ran)
  elseif opts then
    redis.call('HSET', k, 'state', 'succeeded', 'result', payload, 'attempt', '1', 'started', by.started or finished,
      'finished', finished, 'worker', by.worker, 'task', by.task, 'payload', args, 'opts', opts)
  else
    redis.call('HSET', k, 'state', 'succeeded', 'result', payload, 'attempt', '1', 'started', by.started or finished,
      'finished', finished, 'worker', by.worker, 'task', by.task, 'payload', args)
  end
  if waiter then publish(done_channel, id or string.sub(k, #prefix + 6)) end
  expire_finished(k, 'succeeded', ttl, false, by.ttl)
  return 'succeeded'
end

-- The end of finish_many's short form: a lean job's first-attempt success (by.ran its packed end record,
-- its result in it; by.opts the options its fetch gave). `fresh`: the caller knows the job has no record
-- (finish_many's one EXISTS of all its keys), so the end is finish_first's at once; otherwise as any end
-- (one with a record, made since its start, takes the result from `ran`: store/endrow.py's layout).
local function finish_short(now, ttl, k, token, acks, by, fresh)
  if fresh then return finish_first(now, ttl, nil, token, 'succeeded', '', 0, '', acks, by, nil, k) end
  return finish_attempt(now, ttl, string.sub(k, #prefix + 6), token, 'succeeded', ran_result(by.ran), 0, '',
    acks, by, k)
end

local NOBODY = {worker = '', task = ''}

-- The end of one attempt, fenced by its token (see finish_many.lua); returns the outcome or "stale".
-- `acks`: {ack = {stream -> entry ids to ack and delete}}, acked and dropped a stream at once after all the
-- caller's attempts (finish_many: ack_all); without it each is done here.
-- `by`: {worker, started (ms), task[, args, opts][, now, ttl][, ran]} of the attempt: what a lean job's first
-- attempt writes at its end (args '' or nil: read from the entry; now and ttl: the same as the arguments, as
-- text; ran: the end record's packed field, finish_many's short form, which a success writes instead).
-- `k`: the job's key when the caller has it (finish_many's KEYS), else made here.
finish_attempt = function(now, ttl, id, token, outcome, payload, due, dlq, acks, by, k)
  by = by or NOBODY
  k = k or job_key(id)
  local lean = string.byte(token, 1) == 64  -- '@': a lean job's first attempt, which most often has no record
  if lean and redis.call('EXISTS', k) == 0 then
    return finish_first(now, ttl, id, token, outcome, payload, due, dlq, acks, by, nil, k)
  end
  -- one HMGET fences every end with a record; a lean job's record without a state is a waiter's flag (`w`)
  local state, current, stream, entry, cancel, run_id, waiter, replayed, parent, dependents, lh, after_me
  local sent = not lean and by.stream
  if sent and sent ~= '' then
    -- its start's stream, entry, run, parent and dependents, as the worker sends them back (start_entry's
    -- row): the record holds the same while the token is the job's, which this read says
    local r = redis.call('HMGET', k, 'state', 'token', 'cancel', 'w', 'replayed', 'lh', 'dependent_jobs')
    state, current, cancel, waiter, replayed, lh, after_me = r[1], r[2], r[3], r[4], r[5], r[6], r[7]
    stream, entry, run_id, parent, dependents = sent, by.entry, by.run, by.parent, by.dependents
    if run_id == '' then run_id = false end
    if parent == '' then parent = false end
    if dependents == '' then dependents = false end
  else
    local r = redis.call('HMGET', k, 'state', 'token', 'stream', 'entry', 'cancel', 'run', 'w', 'replayed',
      'parent', 'dependents', 'lh', 'dependent_jobs')
    state, current, stream, entry, cancel, run_id, waiter, replayed, parent, dependents, lh, after_me =
      r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12]
  end
  if lean and not state then
    return finish_first(now, ttl, id, token, outcome, payload, due, dlq, acks, by, waiter, k)
  end
  if state == 'queued' and string.sub(token, 1, 1) == '@' and token == lean_token(entry or '')
    and holder_of(stream_key(redis.call('HGET', k, 'queue'), redis.call('HGET', k, 'prio')), entry) then
    -- a record made while it was queued (by an older watch.lua, or as a dependency), then its
    -- entry was delivered: the delivery started it
    stream = stream_key(redis.call('HGET', k, 'queue'), redis.call('HGET', k, 'prio'))
    redis.call('HSET', k, 'state', 'running', 'attempt', 1, 'token', token, 'stream', stream, 'worker', by.worker,
      'started', by.started or (by.ran and string.match(by.ran, '^%d+')) or now)
    state, current = 'running', token
    lh = lh or lean_held(redis.call('HGET', k, 'opts'))  -- the slots the fetch that started it took
  end
  if state ~= 'running' or current ~= token then return 'stale' end
  if lh then release_held(k, id, now, lh) end
  if acks then
    local list = acks.ack[stream]
    if not list then list = {}; acks.ack[stream] = list end
    list[#list + 1] = entry
  else
    redis.call('XACK', stream, GROUP, entry)
    redis.call('XDEL', stream, entry)
  end
  if cancel == '1' and outcome ~= 'succeeded' then outcome, payload = 'cancelled', 'cancelled while running' end
  if outcome == 'retry' then
    redis.call('HSET', k, 'error', payload, 'token', '')
    if due <= now then push(id, now) else delay_job(k, id, 'retrying', due) end
    return outcome
  end
  if outcome == 'succeeded' then
    redis.call('HSET', k, 'state', 'succeeded', 'result', payload, 'finished', txt(now), 'token', '')
  elseif outcome == 'dead' then
    redis.call('HSET', k, 'state', 'dead', 'error', payload, 'finished', now, 'token', '')
    redis.call('ZADD', dlq_of(dlq), now, id)
    if dlq and dlq ~= '' then redis.call('SADD', prefix .. ':dlqs', dlq) end
  elseif outcome == 'skipped' or outcome == 'cancelled' then
    redis.call('HSET', k, 'state', outcome, 'reason', payload, 'finished', now, 'token', '')
  else
    return redis.error_reply('unknown outcome ' .. outcome)
  end
  on_terminal(id, now, {run_id, waiter, replayed, parent, dependents, outcome, after_me})
  expire_finished(k, outcome, ttl, run_id ~= false and run_id ~= nil)
  return outcome
end

-- Whether stream id a is below b (ms-seq, decimal parts without leading zeros), with string.find and text
-- comparisons only (a string.match with captures makes two strings: ~1,500 instructions a call).
local function entry_lt(a, b)
  local da, db = string.find(a, '-', 1, true), string.find(b, '-', 1, true)
  if da ~= db then return da < db end  -- the ms with fewer digits is the smaller
  if #a == #b then return a < b end  -- ms and seq of the same lengths: text order is id order
  local ma, mb = string.sub(a, 1, da), string.sub(b, 1, db)
  if ma ~= mb then return ma < mb end
  return #a < #b
end

-- Delete entries just acked. An XDEL finds its entry by walking the stream node's listpack from the node's
-- start (~35k instructions an id at the default 100 entries a node, callgrind), so a batch whose entries
-- were all pending (`all_pending`: XACK acked each, so each was delivered) is trimmed instead: XTRIM MINID
-- drops whole nodes and walks a partial one once. It may drop every entry below both the oldest entry still
-- pending and the batch's newest: each of those was delivered (XREADGROUP '>' delivers in id order, and the
-- batch's newest was), none is pending, and every script that acks an entry deletes it, so the only ones
-- still there are the batch's. The batch's entries from the cut on (an older attempt still runs) are
-- deleted one by one.
local function drop_acked(stream, entries, all_pending)
  local cut
  if all_pending and #entries > 1 then
    local top = entries[1]
    for i = 2, #entries do
      if entry_lt(top, entries[i]) then top = entries[i] end
    end
    local ms, seq = string.match(top, '^(%d+)%-(%d+)$')
    if ms and #seq < 15 then
      cut = ms .. '-' .. (tonumber(seq) + 1)
      local oldest = redis.call('XPENDING', stream, GROUP, '-', '+', 1)[1]
      if oldest and entry_lt(oldest[1], cut) then cut = oldest[1] end
      redis.call('XTRIM', stream, 'MINID', cut)
    end
  end
  local rest = entries
  if cut then
    rest = {}
    for _, e in ipairs(entries) do
      if not entry_lt(e, cut) then rest[#rest + 1] = e end
    end
  end
  for i = 1, #rest, 500 do redis.call('XDEL', stream, unpack(rest, i, math.min(i + 499, #rest))) end
end

-- Ack and delete the entries finish_attempt collected: one XACK a stream (pages of 500), then drop_acked.
local function ack_all(acks)
  for stream, entries in pairs(acks.ack) do
    local acked = 0
    for i = 1, #entries, 500 do
      acked = acked + redis.call('XACK', stream, GROUP, unpack(entries, i, math.min(i + 499, #entries)))
    end
    drop_acked(stream, entries, acked == #entries)
  end
end

-- A signal job's timeout came before its payload: it fails (state dead, not dead-lettered: no task ran to
-- replay), so `after NAME.failed` paths apply; resuming the run makes it wait again.
local function time_out_signal(id, now)
  local k = job_key(id)
  local name, timeout, run_id = unpack(redis.call('HMGET', k, 'name', 'signal', 'run'))
  if not name and run_id then name = string.sub(id, #run_id + 2) end  -- (no name held: the id is RUN.NAME)
  stop_awaiting(id)
  local ms, shown = tonumber(timeout) or 0, nil
  for _, unit in ipairs({{86400000, 'd'}, {3600000, 'h'}, {60000, 'm'}, {1000, 's'}}) do
    if not shown and ms >= unit[1] and ms % unit[1] == 0 then shown = (ms / unit[1]) .. unit[2] end
  end
  redis.call('HSET', k, 'state', 'dead', 'finished', now, 'error', cjson.encode({type = 'SignalTimeout',
    message = 'no signal ' .. (name or '?') .. ' arrived within ' .. (shown or (ms .. 'ms'))}))
  redis.call('HDEL', k, 'due')
  on_terminal(id, now)
end
