-- Shared by every script (prepended when loaded). ARGV[1] is the key prefix "{namespace}";
-- the key suffixes mirror runtime/keys.py, and tests/test_keys.py pins both.
local prefix = ARGV[1]
local function job_key(id) return prefix .. ':job:' .. id end
local function run_key(id) return prefix .. ':run:' .. id end
local function stream_key(queue, prio) return prefix .. ':q:' .. queue .. ':' .. prio end
local delayed_key = prefix .. ':delayed'
local dlq_key = prefix .. ':dlq'
local GROUP = 'tqflow'
local TERMINAL = {succeeded = true, dead = true, skipped = true, cancelled = true}

-- Put a job on its stream now.
local function push(id, now)
  local k = job_key(id)
  local q, p = unpack(redis.call('HMGET', k, 'queue', 'prio'))
  redis.call('XADD', stream_key(q, p), '*', 'j', id)
  redis.call('HSET', k, 'state', 'queued', 'enqueued', now)
end

-- Put a job on its stream, or in the delayed set when it asks for a delay before its first try.
local function schedule(id, now)
  local k = job_key(id)
  local delay = tonumber(redis.call('HGET', k, 'delay_ms') or '0') or 0
  if delay > 0 then
    redis.call('HSET', k, 'state', 'scheduled', 'due', now + delay)
    redis.call('ZADD', delayed_key, now + delay, id)
    redis.call('PUBLISH', prefix .. ':delayed:wake', now + delay)
  else
    push(id, now)
  end
end

local function status_holds(state, status)
  if status == 'succeeded' then return state == 'succeeded' end
  if status == 'failed' then return state == 'dead' end
  if status == 'skipped' then return state == 'skipped' or state == 'cancelled' end
  if status == 'done' then return TERMINAL[state] == true end
  return false
end

local function condition_holds(cond, run_id)
  if cond.status ~= nil then
    local state = redis.call('HGET', job_key(run_id .. '.' .. cond.status[1]), 'state')
    return status_holds(state, cond.status[2])
  end
  if cond['not'] ~= nil then return not condition_holds(cond['not'], run_id) end
  local all = cond['and'] or cond['all']
  if all ~= nil then
    for _, c in ipairs(all) do if not condition_holds(c, run_id) then return false end end
    return true
  end
  local any = cond['or'] or cond['any']
  if any ~= nil then
    for _, c in ipairs(any) do if condition_holds(c, run_id) then return true end end
    return false
  end
  if cond.lit ~= nil then return cond.lit == true end
  return false
end

-- All of a job's upstream jobs are terminal: run it if its data and `after` condition hold,
-- else skip it. Returns true when it was skipped (so the caller propagates that).
local function resolve(id, now)
  local k = job_key(id)
  local run_id, data_deps, after = unpack(redis.call('HMGET', k, 'run', 'data_deps', 'after'))
  for _, dep in ipairs(cjson.decode(data_deps or '[]')) do
    if redis.call('HGET', job_key(run_id .. '.' .. dep), 'state') ~= 'succeeded' then
      redis.call('HSET', k, 'state', 'skipped', 'finished', now, 'reason', 'upstream ' .. dep .. ' did not succeed')
      return true
    end
  end
  if after and after ~= '' and not condition_holds(cjson.decode(after), run_id) then
    redis.call('HSET', k, 'state', 'skipped', 'finished', now, 'reason', 'after condition cannot hold')
    return true
  end
  schedule(id, now)
  return false
end

-- A job reached a terminal state: count it in its run, release its dependents (each exactly
-- once: only the decrement that reaches zero resolves a dependent), finish the run at the end.
local function on_terminal(id, now)
  local worklist = {id}
  local run_id = redis.call('HGET', job_key(id), 'run')
  if not run_id or run_id == '' then return end
  local rk = run_key(run_id)
  while #worklist > 0 do
    local current = table.remove(worklist)
    local k = job_key(current)
    local state, dependents = unpack(redis.call('HMGET', k, 'state', 'dependents'))
    redis.call('HINCRBY', rk, 'open', -1)
    if state == 'dead' then redis.call('HINCRBY', rk, 'failed', 1) end
    for _, name in ipairs(cjson.decode(dependents or '[]')) do
      local dep = run_id .. '.' .. name
      if redis.call('HINCRBY', job_key(dep), 'deps_left', -1) == 0 then
        if resolve(dep, now) then table.insert(worklist, dep) end
      end
    end
  end
  local open, failed, cancelled = unpack(redis.call('HMGET', rk, 'open', 'failed', 'cancel'))
  if tonumber(open) <= 0 and redis.call('HGET', rk, 'state') == 'running' then
    local final = 'succeeded'
    if cancelled == '1' then final = 'cancelled' elseif tonumber(failed or '0') > 0 then final = 'failed' end
    redis.call('HSET', rk, 'state', final, 'finished', now)
    redis.call('RPUSH', rk .. ':done', final)
    redis.call('EXPIRE', rk .. ':done', 86400)
  end
end
