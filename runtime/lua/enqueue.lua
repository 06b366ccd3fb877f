-- Submit standalone jobs: all or nothing (mode "all") or each on its own (mode "each").
-- KEYS: none (jobs in ARGV) or {staging list} (jobs pushed there first, for batches over ~1,000 arguments).
-- ARGV: prefix, now, mode, max payload bytes, field count, then 6 fields a job:
--   id, task, queue, priority level, payload, options (JSON, or '' for none).
-- Options read here: d (delay ms), dl (deadline ms), uk/ut/uc (unique key, ttl ms, conflict).
-- Returns {"done"|"aborted", one status a job: "ok" | "skip:<id>" | "reject:<id>" | "error:<why>"}.
local now = tonumber(ARGV[2])
local mode, max_payload, nfields = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local items, base = ARGV, 5
if #KEYS > 0 then
  items, base = {}, 0
  local n = redis.call('LLEN', KEYS[1])
  if n ~= nfields then return redis.error_reply('staged ' .. n .. ' fields, expected ' .. nfields) end
  for start = 0, n - 1, 1000 do
    for _, v in ipairs(redis.call('LRANGE', KEYS[1], start, start + 999)) do items[#items + 1] = v end
  end
  redis.call('DEL', KEYS[1])
end
if nfields % 6 ~= 0 then return redis.error_reply('job fields come in sixes') end
local count = nfields / 6
local claimed = {}  -- unique keys taken earlier in this batch

local function opts_of(i)
  local raw = items[base + i * 6 + 6]
  if raw == nil or raw == '' then return nil end
  return cjson.decode(raw)
end

-- What would happen to job i: "ok", "replace:<id>" (unique replace), or a final status.
local function check(i, o)
  local id, payload = items[base + i * 6 + 1], items[base + i * 6 + 5]
  if #payload > max_payload then return 'error:payload of ' .. #payload .. ' bytes is over the limit' end
  if string.find(id, '[{}]') or #id > 200 then return 'error:bad job id' end
  if redis.call('EXISTS', job_key(id)) == 1 then return 'error:job ' .. id .. ' already exists' end
  if o == nil or o.uk == nil then return 'ok' end
  local holder = claimed[o.uk] or redis.call('GET', prefix .. ':u:' .. o.uk)
  if not holder then return 'ok' end
  if o.uc == 'reject' then return 'reject:' .. holder end
  if o.uc == 'replace' then return 'replace:' .. holder end
  return 'skip:' .. holder
end

local queues = {}
local function write(i, o, status)
  local id, task, q, p, payload, raw = unpack(items, base + i * 6 + 1, base + i * 6 + 6)
  local k = job_key(id)
  local fields = {'task', task, 'payload', payload, 'queue', q, 'prio', p}
  queues[q] = true
  if o ~= nil then
    fields[#fields + 1] = 'opts'; fields[#fields + 1] = raw
    if o.dl then fields[#fields + 1] = 'deadline_at'; fields[#fields + 1] = now + (o.d or 0) + o.dl end
    if o.uk then
      if string.sub(status, 1, 8) == 'replace:' then
        cancel_idle(string.sub(status, 9), now, 'replaced by ' .. id)
      end
      redis.call('SET', prefix .. ':u:' .. o.uk, id, 'PX', o.ut)
      claimed[o.uk] = id
      fields[#fields + 1] = 'ukey'; fields[#fields + 1] = o.uk
    end
    if o.d and o.d > 0 then
      redis.call('HSET', k, unpack(fields))
      delay_job(k, id, 'scheduled', now + o.d)
      return
    end
  end
  local eid = redis.call('XADD', stream_key(q, p), '*', 'j', id)
  redis.call('HSET', k, 'state', 'queued', 'enqueued', now, 'entry', eid, unpack(fields))
end

-- statuses[1] is the verdict; never unpack() long tables (Lua's stack holds ~8,000 values)
local statuses = {'done'}
if mode == 'all' then
  local opts, failed = {}, false
  for i = 0, count - 1 do
    opts[i] = opts_of(i)
    local status = check(i, opts[i])
    statuses[i + 2] = status
    if string.sub(status, 1, 6) == 'error:' or string.sub(status, 1, 7) == 'reject:' then failed = true end
    if opts[i] ~= nil and opts[i].uk ~= nil and (status == 'ok' or string.sub(status, 1, 8) == 'replace:') then
      claimed[opts[i].uk] = items[base + i * 6 + 1]
    end
  end
  if failed then statuses[1] = 'aborted'; return statuses end
  claimed = {}
  for i = 0, count - 1 do
    local status = statuses[i + 2]
    if status == 'ok' or string.sub(status, 1, 8) == 'replace:' then
      write(i, opts[i], status)
      statuses[i + 2] = 'ok'
    end
  end
else
  for i = 0, count - 1 do
    local o = opts_of(i)
    local status = check(i, o)
    if status == 'ok' or string.sub(status, 1, 8) == 'replace:' then
      write(i, o, status)
      status = 'ok'
    end
    statuses[i + 2] = status
  end
end
for q, _ in pairs(queues) do redis.call('SADD', prefix .. ':queues', q) end
return statuses
