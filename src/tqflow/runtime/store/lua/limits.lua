-- Flow control (issue 16): rate and concurrency limits, checked when a job starts (start_entry).
-- A job's limits travel in its options JSON (`lim`: {n = name, k = key, c = concurrency} or
-- {n, k, r = rate, p = period ms, b = burst}), so no registry is read. One bucket or semaphore per
-- NAME|KEY ("member"); its keys (store/keys.py LimitKeys mirrors them), all in the namespace's slot:
--   :limit:M:b  string  a rate bucket: "N T" (N tokens as of T, Redis TIME in µs)
--   :limit:M:s  set   a concurrency semaphore's holders (job ids). No lease is stored per holder: a slot's
--                     lease is its attempt's (holder_lease_end), read only when the semaphore is full
--   :limit:M:e  zset  one member, `lease`: a lower bound of the holders' lease ends (ms), lowered by every
--                     grant and start (ZADD LT), set by each scan of a full semaphore (slots_free)
--   :limit:M:w  list  job ids waiting for M, first come first served
--   :limit:due  zset  M -> ms when its waiters may next be admitted (the promoter's timer)
--   :limit:keys zset  M -> ms it was first seen (inspection)
--   :limit:defs hash  name -> the definition JSON a waiting job carried (the timer's copy)
-- A job over its limit is parked (state `limited`, its stream entry deleted, no attempt counted) and
-- waits in M:w without a worker. It is let go ("granted") by the end of a holder or by the timer: its
-- slot (concurrency) or token (rate) is taken for it then, recorded in its `lg` field, and it goes back to
-- its stream; its start honours the grant. `granted` (ms) records when the last grant let it go. The concurrency slots a job holds are listed in its `lh` field
-- and come back when its attempt ends, is reclaimed or handed back, or when its lease runs out.
-- lim_due_key, lim_keys_key, lim_defs_key (:limit:due, :limit:keys, :limit:defs): bound per call (common.lua)
local GRANT_MS = 30000  -- a granted job not started within this gives its slot back (its start re-checks)
local function lim_base(member) return prefix .. ':limit:' .. member end
-- (the holders' keys before the set: `:limit:M:h`, a zset of id -> lease end; migrate_holders folds them in)
local function lim_member(l) return l.n .. '|' .. (l.k or '') end

-- A member seen for the first time: indexed for inspection, with its definition.
local function lim_seen(m, l, now)
  if redis.call('ZADD', lim_keys_key, 'NX', now, m) == 1 then redis.call('HSET', lim_defs_key, l.n, cjson.encode(l)) end
end

-- Redis' own clock in µs: every worker's rate check reads the same clock, so buckets are exact. Read once a
-- script call: a call is one instant of the bucket's history.
-- (lim_call_us: bound per call, common.lua)
local function redis_us()
  if not lim_call_us then
    local t = redis.call('TIME')
    lim_call_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return lim_call_us
end

-- A job's limits (`lim` of its options, or a lean entry's `l`: lim_group), decoded once per options text a call (a batch's jobs share it),
-- each limit's member (`m`) and the `lh` the limits make (`held`) worked out with them.
-- (lim_specs: bound per call, common.lua; nil until its first use)
local function lim_specs_of(opts)
  if not lim_specs then lim_specs = {} end
  local specs = lim_specs[opts]
  if specs == nil then
    specs = cjson.decode(opts).lim or false
    lim_specs[opts] = specs
    if specs then
      local members, held = {}, nil
      for i, l in ipairs(specs) do
        members[i] = lim_member(l)
        if l.c then held = (held and (held .. '\n') or '') .. members[i] .. '\t' .. l.c end
      end
      lim_specs[specs] = {members = members, held = held or ''}
    end
  end
  return specs
end

-- The tokens of a rate bucket now (refilled since its last write), and whether it existed.
local function bucket_tokens(base, l, t_us)
  local cap = tonumber(l.b) or l.r
  local b = redis.call('GET', base .. ':b')
  if not b then return cap, false end
  local n, t = string.match(b, '^(%S+) (%S+)$')
  n, t = tonumber(n), tonumber(t)
  if not n or not t then return cap, false end
  return math.min(cap, n + (t_us - t) * l.r / (l.p * 1000)), true
end

local function bucket_write(base, l, n, t_us)
  local cap = tonumber(l.b) or l.r
  -- it expires when it would be full again: a full bucket is the same as none
  redis.call('SET', base .. ':b', string.format('%.6f %.0f', n, t_us), 'PX', math.ceil((cap - n) * l.p / l.r) + 1000)
end

-- When the slot job `id` holds on M runs out (ms, the caller's clock), read from what carries its attempt's
-- lease; nil when it holds none any more (its attempt ended, was reclaimed or was parked, and nothing gave
-- the slot back). A granted job not started yet: its grant's GRANT_MS. A running one: its record's
-- `lease_until` (the heartbeat renews it). A lean job's delivered first attempt with no record (or one made
-- while it was queued): its delivery plus its worker's lease (none once the worker's registry record is
-- gone: recovery takes that attempt back too, see lean_record).
local function holder_lease_end(id, m, now)
  local state, lease_until, lg, granted, entry = unpack(redis.call('HMGET', job_key(id), 'state', 'lease_until', 'lg',
    'granted', 'entry'))
  if state == 'running' then return tonumber(lease_until or '') or 0 end
  if state == 'queued' and lg and string.find('\n' .. lg .. '\n', '\n' .. m .. '\n', 1, true) then
    return (tonumber(granted or '') or 0) + GRANT_MS
  end
  if state and state ~= 'queued' then return nil end
  local q, p, eid = lean_parts(id)
  if not q or (state and entry ~= eid) then return nil end
  local holder, idle = holder_of(stream_key(q, p), eid)
  if not holder then return nil end
  local lease = tonumber(redis.call('HGET', prefix .. ':worker:' .. holder, 'lease') or '') or 0
  return now - (idle or 0) + lease
end

-- The lower bound of M's holders' lease ends (its `:e`), or nil when there is none.
local function lease_floor(base)
  local e = redis.call('ZSCORE', base .. ':e', 'lease')
  return e and tonumber(e)
end

-- Free slots of a semaphore. A full one drops the holders whose lease ran out first (a SIGKILLed worker's
-- jobs): it reads every holder's lease (holder_lease_end), but only once the earliest lease end it last saw
-- has passed, so a full semaphore is not rescanned at every look.
local function slots_free(m, l, now)
  local base = lim_base(m)
  local s = base .. ':s'
  local free = l.c - redis.call('SCARD', s)
  if free > 0 then return free end  -- expired holders only matter to a full semaphore
  local floor = lease_floor(base)
  if floor and floor >= now then return free end  -- no lease can have run out yet
  local earliest
  for _, id in ipairs(redis.call('SMEMBERS', s)) do
    local ends = holder_lease_end(id, m, now)
    if not ends or ends < now then redis.call('SREM', s, id)
    elseif not earliest or ends < earliest then earliest = ends end
  end
  if earliest then redis.call('ZADD', base .. ':e', earliest, 'lease') else redis.call('DEL', base .. ':e') end
  return l.c - redis.call('SCARD', s)
end

-- A slot of M taken for job(s) whose lease ends at `ends`: the lower bound follows (one ZADD LT).
local function lease_taken(base, ends) redis.call('ZADD', base .. ':e', 'LT', ends, 'lease') end

-- When waiters of a full M may next find a slot: just after the earliest lease end (now: not known).
local function next_reclaim(base, now)
  local floor = lease_floor(base)
  return floor and math.max(floor + 1, now) or now
end

-- Batched limits (the cost of a limited job, issue 16). A script that sets `lim_batch = true` and calls
-- lim_flush() before it returns (fetch, start, start_many, finish, finish_many) reads a member's semaphore
-- or bucket once a call and writes it once a call: the slots its starts take are one SADD (and one ZADD LT of
-- the lease bound), the slots its finishes give back one SREM (a set: ~0.2 µs a job for 100 holders, where
-- a zset's listpack scanned and moved, 3.3 µs), a bucket's new level one SET. lim_cached[M] is what the
-- call knows of M:
--   {take = true, l, free, waiting, add = {id, ...}, ends = the earliest lease end} (concurrency) or
--   {take = true, l, n, waiting, dirty} (rate): starts, admitted from it while nobody waits and it has room;
--   {give = true, rem = {id, ...}}: finishes, while nobody waits for M (nobody to let go).
-- Anything else that reads or writes M's keys (a grant, a park, a refusal, the timer) first writes what is
-- pending (lim_sync) and reads Redis again, as without the batch.
-- (lim_batch, lim_cached: bound per call, common.lua: a function library keeps its top level between calls;
-- lim_cached nil until its first use)

local function lim_write(cmd, key, items)
  for i = 1, #items, 1000 do redis.call(cmd, key, unpack(items, i, math.min(i + 999, #items))) end
end

local function lim_sync(m)
  local st = lim_cached and lim_cached[m]
  if not st then return end
  lim_cached[m] = nil
  st.gone = true  -- a lean entry's group (lim_group) that holds it reads M again
  local base = lim_base(m)
  if st.add and #st.add > 0 then
    lim_write('SADD', base .. ':s', st.add)
    lease_taken(base, st.ends)
  end
  if st.rem and #st.rem > 0 then lim_write('SREM', base .. ':s', st.rem) end
  if st.dirty then bucket_write(base, st.l, st.n, redis_us()) end
end

local function lim_flush()
  if lim_cached then
    for m in pairs(lim_cached) do lim_sync(m) end
  end
end

-- When the waiters of M may next be admitted (ms on the caller's clock `now`), or nil (nothing waits).
local function set_due(m, due)
  if not due then redis.call('ZREM', lim_due_key, m); return end
  local first = redis.call('ZRANGE', lim_due_key, 0, 0, 'WITHSCORES')
  if first[2] == nil or tonumber(first[2]) > due then publish(wake_channel, due) end
  redis.call('ZADD', lim_due_key, due, m)
end

local function add_line(list, m)
  if not list or list == '' then return m end
  return list .. '\n' .. m
end

-- Let waiting jobs of M go, as many as its capacity admits now; then set its timer. `t_us`: Redis time
-- (rate), read when nil.
local function lim_release(m, l, now, t_us)
  lim_sync(m)
  local base = lim_base(m)
  local w = base .. ':w'
  if redis.call('LLEN', w) == 0 then return end  -- nothing waits (its timer went when the list emptied)
  if l.c then
    local free = slots_free(m, l, now)
    while free > 0 do
      local id = redis.call('LPOP', w)
      if not id then break end
      local k = job_key(id)
      local state, lg, lh = unpack(redis.call('HMGET', k, 'state', 'lg', 'lh'))
      if state == 'limited' then
        redis.call('SADD', base .. ':s', id)
        lease_taken(base, now + GRANT_MS)
        redis.call('HSET', k, 'lg', add_line(lg, m), 'lh', add_line(lh, m .. '\t' .. l.c), 'granted', now)
        push(id, now)
        free = free - 1
      end
    end
    if redis.call('LLEN', w) == 0 then set_due(m, nil); return end
    set_due(m, next_reclaim(base, now))
    return
  end
  t_us = t_us or redis_us()
  local n = bucket_tokens(base, l, t_us)
  local taken = false
  while n >= 1 do
    local id = redis.call('LPOP', w)
    if not id then break end
    local k = job_key(id)
    local state, lg = unpack(redis.call('HMGET', k, 'state', 'lg'))
    if state == 'limited' then
      redis.call('HSET', k, 'lg', add_line(lg, m), 'granted', now)
      push(id, now)
      n = n - 1
      taken = true
    end
  end
  if taken then bucket_write(base, l, n, t_us) end
  if redis.call('LLEN', w) == 0 then set_due(m, nil); return end
  -- the next token, in ms from now (Redis time), on the caller's clock
  set_due(m, now + math.max(1, math.ceil((1 - n) * l.p / l.r)))
end

-- Give back the concurrency slots a job holds (its `lh`: one "MEMBER<tab>LIMIT" a line), letting the
-- next waiters go. `lh`: the field as the caller read it.
-- One slot of M (concurrency c) given back by job `id`, and the next waiter let go; batched while nobody
-- waits for M (see lim_batch).
local function lim_give(m, c, id, now)
  if lim_batch then
    local st = lim_cached and lim_cached[m]
    if st and st.give then st.rem[#st.rem + 1] = id; return end
    if not st and redis.call('LLEN', lim_base(m) .. ':w') == 0 then
      if not lim_cached then lim_cached = {} end
      lim_cached[m] = {give = true, rem = {id}}
      return
    end
  end
  lim_sync(m)
  redis.call('SREM', lim_base(m) .. ':s', id)
  lim_release(m, {c = c}, now)
end

local function release_held(k, id, now, lh)
  if not lh or lh == '' then return end
  for m, c in string.gmatch(lh, '([^\n\t]+)\t(%d+)') do lim_give(m, tonumber(c), id, now) end
  redis.call('HDEL', k, 'lh', 'lg')
end

-- A lean job's first attempt ended with no record (finish_first): the slots its start took go back (`lims`:
-- its limits as lim_specs_of or lim_group read them). A slot given back while nobody waits is one more id
-- in the call's SREM (lim_give's batched case, inline: this runs for every limited lean job's end).
local function release_lean(id, lims, now)
  local members = lim_specs[lims].members
  for i = 1, #lims do
    local c = lims[i].c
    if c then
      local m = members[i]
      local st = lim_cached and lim_cached[m]
      if st and st.give then
        local rem = st.rem
        rem[#rem + 1] = id
      else
        lim_give(m, c, id, now)
      end
    end
  end
end

-- The limits of a lean entry's `l` (their JSON array, enqueue.lua lean_split), read once a call (lim_groups):
-- {specs, m, l (its one limit's member and definition, when it has one), c (that one is a concurrency
-- limit), held (the `lh` its concurrency limits make, or nil), backs = {}} (fetch.lua), or false when the
-- text is not a list of limits (its start then goes through start_guarded, which dead-letters it).
local function lim_group(text)
  if not lim_groups then lim_groups = {} end
  local g = lim_groups[text]
  if g ~= nil then return g end
  g = false
  local ok, specs = pcall(cjson.decode, text)
  if ok and type(specs) == 'table' and #specs > 0 then
    local members, held = {}, nil
    for i, l in ipairs(specs) do
      if type(l) ~= 'table' or type(l.n) ~= 'string' or (l.k ~= nil and type(l.k) ~= 'string') then members = nil; break end
      if l.c ~= nil then
        if type(l.c) ~= 'number' or l.c < 1 then members = nil; break end
      elseif type(l.r) ~= 'number' or type(l.p) ~= 'number' or l.r <= 0 or l.p <= 0 then members = nil; break end
      members[i] = lim_member(l)
      if l.c then held = (held and (held .. '\n') or '') .. members[i] .. '\t' .. l.c end
    end
    if members then
      if not lim_specs then lim_specs = {} end
      lim_specs[specs] = {members = members, held = held or ''}
      g = {specs = specs, held = held, backs = {}, c = specs[1].c ~= nil}
      if #specs == 1 then g.m, g.l = members[1], specs[1] end
    end
  end
  lim_groups[text] = g
  return g
end

-- What a lean job's end reads in the options text its worker sent back (finish_first), once a call
-- (lim_ends): {opts = the options its record keeps (nil: none), forget = keep_result=False, lims = the
-- limits whose slots go back (nil: none), m = the member of the one concurrency limit when that is all}; false for no text. The text is what the fetch gave the worker:
-- the entry's options JSON (`lim` in it, for an entry written before `l`), or, for an entry with an `l`
-- and a concurrency limit, its `o` (or nothing), a newline, and its `l` (fetch.lua; a JSON text holds no
-- newline of its own). Its record keeps the options, not the `l` (no job view shows a job's limits).
local function lean_end(text)
  if not text or text == '' then return false end
  if not lim_ends then lim_ends = {} end
  local known = lim_ends[text]
  if known then return known end
  local cut = string.find(text, '\n', 1, true)
  local opts, lims = text, nil
  if cut then
    opts = cut > 1 and string.sub(text, 1, cut - 1) or nil
    local g = lim_group(string.sub(text, cut + 1))
    lims = g and g.specs or nil
  elseif string.find(text, '"lim"', 1, true) then
    lims = lim_specs_of(text) or nil
  end
  known = {opts = opts, forget = opts ~= nil and string.find(opts, '"nr":1', 1, true) ~= nil, lims = lims}
  if lims and #lims == 1 and lims[1].c then known.m = lim_specs[lims].members[1] end
  lim_ends[text] = known
  return known
end

-- Park a job that is over limit M: it waits in M:w (state `limited`) until a grant lets it go.
-- `fresh`: a lean job's record not written yet (lean_record), written now.
local function park(k, id, m, l, now, fresh)
  lim_sync(m)
  local base = lim_base(m)
  redis.call('RPUSH', base .. ':w', id)
  if fresh then redis.call('HSET', k, unpack(lean_fields(fresh, {'state', 'limited', 'limited', m})))
  else redis.call('HSET', k, 'state', 'limited', 'limited', m) end
  redis.call('HSET', lim_defs_key, l.n, cjson.encode(l))
  redis.call('ZADD', lim_keys_key, 'NX', now, m)  -- the timer reads that definition
  if l.c then
    set_due(m, next_reclaim(base, now))
  elseif not redis.call('ZSCORE', lim_due_key, m) then
    set_due(m, now + math.max(1, math.ceil(l.p / l.r)))
  end
end

-- A job about to start: take a slot or token of every limit it has, or none and park it on the first
-- that refuses (a grant it holds on another limit is given back: no hold-and-wait between limits).
-- Returns the record fields to write with the start (`lh`, `lg`), or nil when the job was parked.
-- `lg`, `lh`: its grant and held fields; `lease_until`: the end of the attempt's lease (ms).
-- What a batch knows of M for a start (see lim_batch): read from Redis at its first start of the call.
local function lim_take_state(m, l, now)
  local st = lim_cached and lim_cached[m]
  if st and st.take then return st end
  lim_sync(m)  -- a batch of finishes: written first
  local base = lim_base(m)
  if l.c then
    local free = slots_free(m, l, now)
    st = {take = true, l = l, free = free, waiting = free > 0 and redis.call('LLEN', base .. ':w') or 0, add = {}}
    if free == l.c and st.waiting == 0 then lim_seen(m, l, now) end  -- an idle semaphore: maybe never seen
  else
    local n, existed = bucket_tokens(base, l, redis_us())
    st = {take = true, l = l, n = n, waiting = redis.call('LLEN', base .. ':w'), dirty = false}
    if not existed then lim_seen(m, l, now) end
  end
  if not lim_cached then lim_cached = {} end
  lim_cached[m] = st
  return st
end

-- admit() in a batch, for a job that holds no grant: every limit has room and nobody waits for it, so it
-- takes one of each (written by lim_flush). Returns its `lh`, or nil when admit must look at Redis.
local function admit_batched(id, lims, now, lease_until)
  local known = lim_specs[lims]
  local members = known.members
  local n = #lims
  -- no table a job (the states are lim_cached's, found again in the second loop): this runs for every
  -- limited job fetch starts
  for i = 1, n do
    local l = lims[i]
    local st = lim_take_state(members[i], l, now)
    if st.waiting > 0 or (l.c and st.free < 1) or (not l.c and st.n < 1) then return nil end
  end
  for i = 1, n do
    local st = lim_cached[members[i]]
    if lims[i].c then
      local add = st.add
      add[#add + 1] = id
      if not st.ends or lease_until < st.ends then st.ends = lease_until end
      st.free = st.free - 1
    else
      st.n = st.n - 1
      st.dirty = true
    end
  end
  return known.held
end

local function admit(k, id, opts, lg, lh, now, lease_until, fresh)
  local lims = lim_specs_of(opts)
  if not lims or #lims == 0 then return {} end
  if lim_batch and (not lg or lg == '') then
    local held = admit_batched(id, lims, now, lease_until)
    if held then return {'lh', held, 'lg', ''} end
    for _, l in ipairs(lims) do lim_sync(lim_member(l)) end
  end
  local granted = {}
  for line in string.gmatch(lg or '', '[^\n]+') do granted[line] = true end
  local t_us
  local refused
  local plan = {}
  for i, l in ipairs(lims) do
    local m = lim_member(l)
    local base = lim_base(m)
    local w = base .. ':w'
    local ok
    if l.c then
      local free = slots_free(m, l, now)
      if granted[m] and redis.call('SISMEMBER', base .. ':s', id) == 1 then ok = true  -- its grant holds the slot
      else
        local waiting = free > 0 and redis.call('LLEN', w) or 0
        if waiting > 0 then
          lim_release(m, l, now)
          free = slots_free(m, l, now)
          waiting = redis.call('LLEN', w)
        end
        ok = free > 0 and waiting == 0
        if ok and free == l.c then lim_seen(m, l, now) end  -- an idle semaphore: maybe never seen
      end
      plan[i] = {m = m, l = l}
    elseif granted[m] then
      ok = true
      plan[i] = {m = m, l = l}
    else
      t_us = t_us or redis_us()
      local waiting = redis.call('LLEN', w)
      if waiting > 0 then lim_release(m, l, now, t_us); waiting = redis.call('LLEN', w) end
      local n, existed = bucket_tokens(base, l, t_us)
      ok = n >= 1 and waiting == 0
      if not existed then lim_seen(m, l, now) end
      plan[i] = {m = m, l = l, n = n}
    end
    if not ok then refused = i; break end
  end
  if refused then
    local m, l = plan[refused].m, plan[refused].l
    for _, other in ipairs(lims) do  -- the slots its grants hold on other limits go back
      local om = lim_member(other)
      if other.c and granted[om] and om ~= m then
        redis.call('SREM', lim_base(om) .. ':s', id)
        lim_release(om, other, now)
      end
    end
    if (lh and lh ~= '') or (lg and lg ~= '') then redis.call('HDEL', k, 'lh', 'lg') end
    park(k, id, m, l, now, fresh)
    return nil
  end
  local held = ''
  for _, p in ipairs(plan) do
    if p.l.c then
      redis.call('SADD', lim_base(p.m) .. ':s', id)
      lease_taken(lim_base(p.m), lease_until)
      held = add_line(held, p.m .. '\t' .. p.l.c)
    elseif p.n then
      bucket_write(lim_base(p.m), p.l, p.n - 1, t_us)
    end
  end
  return {'lh', held, 'lg', ''}
end

-- A lean job's delivered first attempt whose record was made between the worker's blocking read and its
-- start (start_many): the record says `running` and lists the slots (lean_held), but none was taken. They
-- are taken now; refused, the attempt is undone (no attempt counted) and the job parked. `f`: the record's
-- fields as start_entry read them (f[5] opts, f[12] lg, f[13] lh). Returns false when it was parked.
local function admit_delivered(k, id, f, now, lease)
  local taken = admit(k, id, f[5], f[12], nil, now, now + lease, nil)
  if taken then
    redis.call('HSET', k, 'lease_until', now + lease, unpack(taken))
    return true
  end
  redis.call('HDEL', k, 'attempt', 'token', 'worker', 'started', 'lease_until', 'stream', 'lh')
  return false
end

-- The limiter timer (promote.lua): admit the waiters of every member due by `now`. Returns how many
-- members it looked at. It also drops from the index a few members idle for an hour (no bucket, no
-- holder, nobody waiting: the same as never seen); the others are looked at again an hour later.
local function release_due(now, count)
  local due = redis.call('ZRANGEBYSCORE', lim_due_key, '-inf', now, 'LIMIT', 0, count)
  for _, m in ipairs(due) do
    local name = string.match(m, '^([^|]*)|')
    local def = name and redis.call('HGET', lim_defs_key, name)
    if def then lim_release(m, cjson.decode(def), now) else redis.call('ZREM', lim_due_key, m) end
  end
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', lim_keys_key, '-inf', now - 3600000, 'LIMIT', 0, 10)) do
    local base = lim_base(m)
    if redis.call('EXISTS', base .. ':b', base .. ':s', base .. ':w') == 0 then
      redis.call('ZREM', lim_keys_key, m)
      redis.call('DEL', base .. ':e')
    else redis.call('ZADD', lim_keys_key, now, m) end
  end
  return #due
end
