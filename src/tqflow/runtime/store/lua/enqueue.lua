-- Submit standalone jobs: all or nothing (mode "all") or each on its own (mode "each").
-- Jobs that share a task, queue, priority and options share one "spec" (4 fields: task, queue, priority
-- level, options JSON or ''); each job is then one field: <16-character id><spec number>|<payload>, or for a
-- lean job (no delay, deadline or unique key: only its stream entry is written, see common.lua)
-- .<spec number>|<payload>; a lean job's status is the id of its entry (its job id is QUEUE.LEVEL.ENTRY_ID).
-- ARGV: now, mode, max payload bytes, nonce, then either
--   spec field count, spec fields…, job fields…   (the client pages this under ~1,000 arguments)
--   or, with KEYS[4] a staging list holding those fields, the list's length.
-- KEYS[1] the queues set, KEYS[2] the delayed set, KEYS[3] the client's lane key[, KEYS[4] the staging list].
-- The nonce makes a re-sent submit idempotent: a client whose connection died after its request was sent
-- cannot tell whether it landed and sends it again (runtime/resend.py); the first send left
-- "<nonce>|<its reply>" in the lane key (one a call in flight per client, kept 2 minutes), so the
-- re-send answers that reply and writes nothing. A lean job's id is the entry XADD made: without it, the
-- jobs of a send could not be found again.
-- Options read here: d (delay ms), dl (deadline ms), uk/ut/uc (unique key, ttl ms, conflict), dep/da (the
-- job ids it depends on; da=done: it runs whatever they ended in).
-- Returns {"done"|"aborted", one status a job: "ok" | "<entry id>" (a lean job) | "skip:<id>" | "reject:<id>"
-- | "error:<why>"}. A lean job's status is the entry id alone, as XADD gave it: no string made a job.
-- The common one-by-one case first: one lean job of one spec without options, no staging list (no tables
-- to build). ARGV: now, mode, max payload, nonce, 4, task, queue, level, '', '.0|<payload>'.
local nonce = ARGV[4]
local landed = redis.call('GET', KEYS[3])
if landed and string.sub(landed, 1, #nonce + 1) == nonce .. '|' then
  if #KEYS > 3 then redis.call('DEL', KEYS[4]) end  -- the re-sent pipeline staged its fields again
  return cjson.decode(string.sub(landed, #nonce + 2))
end
local SEEN_MS = 120000  -- longer than any re-send (runtime/resend.py; a cluster client's own ~60 s)
if #KEYS == 3 and #ARGV == 10 and ARGV[5] == '4' and ARGV[9] == '' and string.sub(ARGV[10], 1, 3) == '.0|' then
  local payload = string.sub(ARGV[10], 4)
  if #payload > tonumber(ARGV[3]) then
    local verdict = 'done'
    if ARGV[2] == 'all' then verdict = 'aborted' end
    return {verdict, 'error:payload of ' .. #payload .. ' bytes is over the limit'}
  end
  local eid = redis.call('XADD', stream_key(ARGV[7], ARGV[8]), '*', 't', ARGV[6], 'p', payload)
  redis.call('SADD', KEYS[1], ARGV[7])
  redis.call('SET', KEYS[3], nonce .. '|["done","' .. eid .. '"]', 'PX', SEEN_MS)
  return {'done', eid}
end
local now = tonumber(ARGV[1])
local mode, max_payload = ARGV[2], tonumber(ARGV[3])
local items, first = ARGV, 5
if #KEYS > 3 then
  items, first = {}, 1
  local n = redis.call('LLEN', KEYS[4])
  if n ~= tonumber(ARGV[5]) then return redis.error_reply('staged ' .. n .. ' fields, expected ' .. ARGV[5]) end
  for start = 0, n - 1, 1000 do
    for _, v in ipairs(redis.call('LRANGE', KEYS[4], start, start + 999)) do items[#items + 1] = v end
  end
  redis.call('DEL', KEYS[4])
end
-- A lean job's options on its entry: its limits (`lim`) apart, as the entry's `l` field (their JSON array),
-- the rest as `o`, so fetch.lua finds a limited job by a field's name and reads its limits without the
-- options' JSON (see fetch.lua). `lim` is the options' last key as store/records.py writes them: split off
-- with string operations, each part checked to decode (the plain text `"lim":[` can only be a key: a
-- string's quotes are escaped). Returns `o` (nil for none) and `l`; options that do not split so are the
-- entry's `o`, whole, as before (lean_record reads both forms).
local function lean_split(raw, o)
  if o == nil or type(o.lim) ~= 'table' or string.sub(raw, -2) ~= ']}' then return raw, nil end
  local at, from = nil, 1
  while true do
    local s = string.find(raw, '"lim":[', from, true)
    if not s then break end
    at, from = s, s + 1
  end
  local before = at and string.sub(raw, at - 1, at - 1)
  if before ~= '{' and before ~= ',' then return raw, nil end
  local l = string.sub(raw, at + 6, -2)
  local rest = before == '{' and '{}' or (string.sub(raw, 1, at - 2) .. '}')
  local ok_l, lims = pcall(cjson.decode, l)
  local ok_r, others = pcall(cjson.decode, rest)
  if not ok_l or not ok_r or type(lims) ~= 'table' or #lims ~= #o.lim or type(others) ~= 'table'
    or others.lim ~= nil then return raw, nil end
  if rest == '{}' then rest = nil end
  return rest, l
end
-- A spec: its task, queue, level, options as sent (raw) and decoded (o), its lean jobs' entry fields (lo, ll:
-- lean_split), and its stream's key, built once.
local nspec = tonumber(items[first])
local specs = {}
for s = 0, nspec / 4 - 1 do
  local b = first + s * 4
  local raw = items[b + 4]
  local o = (raw ~= nil and raw ~= '') and cjson.decode(raw) or nil
  local spec = {task = items[b + 1], q = items[b + 2], p = items[b + 3], raw = raw, o = o,
    stream = stream_key(items[b + 2], items[b + 3])}
  if o ~= nil then spec.lo, spec.ll = lean_split(raw, o) end
  specs[s] = spec
end
local rows_from = first + nspec + 1
local count = #items - rows_from + 1
if count > 100000 then return redis.error_reply('over 100,000 jobs in one submission') end
-- The jobs as three flat lists (a table a job would cost an allocation and three stores a job): id (false for a
-- lean job), payload, spec. Lean or not is the client's decision (store/records.py needs_record): a row with
-- no id is lean.
local ids, payloads, spec_of = {}, {}, {}
for i = 1, count do
  local row = items[rows_from + i - 1]
  local b1, b2, b3 = string.byte(row, 1, 3)
  if b1 == 46 and b3 == 124 and b2 >= 48 and b2 <= 57 then
    -- the common row, a lean job of one of the first ten specs (.N|payload): read by its bytes, no search
    local spec = specs[b2 - 48]
    if spec == nil then return redis.error_reply('job ' .. (i - 1) .. ' names an unknown spec') end
    ids[i], payloads[i], spec_of[i] = false, string.sub(row, 4), spec
  else
    local lean = b1 == 46  -- '.'
    local from = lean and 2 or 17
    local bar = string.find(row, '|', from, true)
    if not bar then return redis.error_reply('malformed job field ' .. (i - 1)) end
    local spec = specs[tonumber(string.sub(row, from, bar - 1))]
    if spec == nil then return redis.error_reply('job ' .. (i - 1) .. ' names an unknown spec') end
    ids[i] = (not lean) and string.sub(row, 1, 16)
    payloads[i] = string.sub(row, bar + 1)
    spec_of[i] = spec
  end
end
local claimed = {}  -- unique keys taken earlier in this batch
local WRITE, SKIP, FAIL = 1, 2, 3

-- What would happen to job i: "ok", "replace:<id>" (unique replace), or a final status; and its verdict:
-- WRITE (accepted), SKIP (a final status that aborts nothing) or FAIL (what aborts an all-or-nothing call).
local function check(i)
  local payload, id = payloads[i], ids[i]
  if #payload > max_payload then return 'error:payload of ' .. #payload .. ' bytes is over the limit', FAIL end
  if not id then return 'ok', WRITE end  -- lean: a new entry, no id to clash and no unique key
  if string.find(id, '[{}]') then return 'error:bad job id', FAIL end
  if redis.call('EXISTS', job_key(id)) == 1 then return 'error:job ' .. id .. ' already exists', FAIL end
  local o = spec_of[i].o
  if o ~= nil and o.dep ~= nil then
    local why = deps_problem(o.dep, id)
    if why then return 'error:' .. why, FAIL end
  end
  if o == nil or o.uk == nil then return 'ok', WRITE end
  local holder = claimed[o.uk] or redis.call('GET', prefix .. ':u:' .. o.uk)
  if not holder then return 'ok', WRITE end
  if o.uc == 'replace' then return 'replace:' .. holder, WRITE end
  if o.uc == 'reject' then return 'reject:' .. holder, FAIL end
  return 'skip:' .. holder, SKIP
end

local queues = {}
-- Write job i; returns its status: "ok", or the entry id for a lean job.
local function write(i, status)
  local id, spec = ids[i], spec_of[i]
  local o = spec.o
  queues[spec.q] = true
  if not id then
    if o == nil then return redis.call('XADD', spec.stream, '*', 't', spec.task, 'p', payloads[i]) end
    local lo, ll = spec.lo, spec.ll
    if ll == nil then return redis.call('XADD', spec.stream, '*', 't', spec.task, 'p', payloads[i], 'o', lo) end
    if lo == nil then return redis.call('XADD', spec.stream, '*', 't', spec.task, 'p', payloads[i], 'l', ll) end
    return redis.call('XADD', spec.stream, '*', 't', spec.task, 'p', payloads[i], 'o', lo, 'l', ll)
  end
  local k = job_key(id)
  local fields = {'task', spec.task, 'payload', payloads[i], 'queue', spec.q, 'prio', spec.p}
  if o ~= nil then
    fields[#fields + 1] = 'opts'; fields[#fields + 1] = spec.raw
    if o.dl then fields[#fields + 1] = 'deadline_at'; fields[#fields + 1] = now + (o.d or 0) + o.dl end
    if o.uk then
      if string.sub(status, 1, 8) == 'replace:' then cancel_idle(string.sub(status, 9), now, 'replaced by ' .. id) end
      redis.call('SET', prefix .. ':u:' .. o.uk, id, 'PX', o.ut)
      claimed[o.uk] = id
      fields[#fields + 1] = 'ukey'; fields[#fields + 1] = o.uk
    end
    if o.dep then  -- waits for its dependencies (common.lua wait_for_deps)
      wait_for_deps(k, id, fields, o, now)
      return 'ok'
    end
    if o.d and o.d > 0 then
      redis.call('HSET', k, unpack(fields))
      delay_job(k, id, 'scheduled', now + o.d)
      return 'ok'
    end
    if o.fk ~= nil then  -- fair share: its key's list first (fair.lua)
      redis.call('HSET', k, unpack(fields))
      fair_add(k, id, spec.q, spec.p, now, tostring(o.fk))
      return 'ok'
    end
  end
  local eid = redis.call('XADD', spec.stream, '*', 'j', id)
  redis.call('HSET', k, 'state', 'queued', 'enqueued', now, 'entry', eid, unpack(fields))
  return 'ok'
end

-- statuses[1] is the verdict; never unpack() long tables (Lua's stack holds ~8,000 values)
local statuses = {'done'}
-- A lean job without options (no id, no spec options) is checked and written here, without check() and
-- write() (two Lua calls a job): its only check is its payload's size, its only write its entry.
if mode == 'all' then
  local failed = false
  local verdicts = {}
  for i = 1, count do
    local status, verdict
    if not ids[i] and spec_of[i].o == nil and #payloads[i] <= max_payload then
      status, verdict = 'ok', WRITE
    else
      status, verdict = check(i)
    end
    statuses[i + 1], verdicts[i] = status, verdict
    if verdict == FAIL then
      failed = true
    elseif verdict == WRITE then
      local o = spec_of[i].o
      if o ~= nil and o.uk ~= nil then claimed[o.uk] = ids[i] end
    end
  end
  if failed then statuses[1] = 'aborted'; return statuses end
  claimed = {}
  for i = 1, count do
    if verdicts[i] == WRITE then
      local spec = spec_of[i]
      if not ids[i] and spec.o == nil then
        queues[spec.q] = true
        statuses[i + 1] = redis.call('XADD', spec.stream, '*', 't', spec.task, 'p', payloads[i])
      else
        statuses[i + 1] = write(i, statuses[i + 1])
      end
    end
  end
else
  for i = 1, count do
    local spec = spec_of[i]
    if not ids[i] and spec.o == nil and #payloads[i] <= max_payload then
      queues[spec.q] = true
      statuses[i + 1] = redis.call('XADD', spec.stream, '*', 't', spec.task, 'p', payloads[i])
    else
      local status, verdict = check(i)
      if verdict == WRITE then status = write(i, status) end
      statuses[i + 1] = status
    end
  end
end
for q, _ in pairs(queues) do redis.call('SADD', KEYS[1], q) end
redis.call('SET', KEYS[3], nonce .. '|' .. cjson.encode(statuses), 'PX', SEEN_MS)
return statuses
