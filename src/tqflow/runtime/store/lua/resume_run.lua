-- Resume an ended run: re-run its jobs that did not succeed (or, with a `from` job, that job and everything
-- downstream of it), keeping the results of the others; the run is `running` again and ends again.
-- A fan-out whose items partly failed re-runs only the items that did not succeed, when its own inputs are
-- kept. Each re-run job gets its retry policy afresh, keeps its history and leaves the dead-letter queue.
-- One script, so the run is never seen half resumed.
-- KEYS[1] run key, KEYS[2…] the run's job records. ARGV: now, run id, from job name ('' = every job that did not succeed), then
-- pairs in topological order: job name, its upstream job names joined by ',' (the plan's waits_for).
-- Returns {'resumed', jobs re-run} | {'running'} (the run has not ended) | {'missing'} | {'nothing'}
local now, run_id, from = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local rk = KEYS[1]
local run_state = redis.call('HGET', rk, 'state')
if not run_state then return {'missing'} end
if run_state == 'running' then return {'running'} end

local names, upstream, index = {}, {}, {}
for i = 4, #ARGV, 2 do
  local name = ARGV[i]
  names[#names + 1] = name
  index[name] = #names
  local ups = {}
  for up in string.gmatch(ARGV[i + 1], '[^,]+') do ups[#ups + 1] = up end
  upstream[name] = ups
end

local function id_of(name) return run_id .. '.' .. name end
local function state(name) return redis.call('HGET', job_key(id_of(name)), 'state') end

-- Which jobs run again.
local rerun = {}
if from ~= '' then
  rerun[from] = true
  for _, name in ipairs(names) do  -- topological order: an upstream is decided before its dependents
    for _, up in ipairs(upstream[name]) do
      if rerun[up] then rerun[name] = true end
    end
  end
else
  for _, name in ipairs(names) do
    if state(name) ~= 'succeeded' then rerun[name] = true end
  end
end

local function leave_dlq(id, opts)
  local name = ''
  if opts and opts ~= '' then
    local ok, o = pcall(cjson.decode, opts)
    if ok and type(o) == 'table' and type(o.dlq) == 'string' then name = o.dlq end
  end
  redis.call('ZREM', dlq_of(name), id)
  if name ~= '' then redis.call('ZREM', dlq_key, id) end
end

-- A job that runs again gets its whole retry policy again (attempt 0, as a DLQ replay); its attempt history
-- keeps every earlier attempt.
local function reset(k)
  redis.call('HDEL', k, 'result', 'error', 'reason', 'finished', 'token', 'cancel', 'replayed', 'due',
    'deadline_at', 'lease_until', 'worker')
  redis.call('HSET', k, 'attempt', 0)
  redis.call('PERSIST', k)
end

-- A fan-out parent whose items ran and whose inputs are kept: only its items that did not succeed run again.
local function resume_items(name)
  local id = id_of(name)
  local k = job_key(id)
  local n = tonumber(redis.call('HGET', k, 'children') or '0')
  local again = {}
  for i = 0, n - 1 do
    local child = id .. '.' .. i
    if redis.call('HGET', job_key(child), 'state') ~= 'succeeded' then again[#again + 1] = child end
  end
  reset(k)
  redis.call('HSET', k, 'state', 'fanout', 'children_left', #again)
  leave_dlq(id, redis.call('HGET', k, 'opts'))
  for _, child in ipairs(again) do
    local ck = job_key(child)
    leave_dlq(child, redis.call('HGET', ck, 'opts'))
    reset(ck)
    push(child, now)
  end
  return #again
end

local count, failed, cancelled, roots = 0, 0, 0, {}
for _, name in ipairs(names) do
  local id = id_of(name)
  local k = job_key(id)
  if rerun[name] then
    count = count + 1
    local deps = 0
    for _, up in ipairs(upstream[name]) do if rerun[up] then deps = deps + 1 end end
    local children = tonumber(redis.call('HGET', k, 'children') or '0')
    if from ~= name and deps == 0 and children > 0 and (redis.call('HGET', k, 'fan_out') or '') ~= '' then
      if resume_items(name) == 0 then rerun[name] = nil; count = count - 1 end
    else
      if children > 0 then  -- it expands again from new inputs: the old items go (their history stays)
        for i = 0, children - 1 do redis.call('DEL', job_key(id .. '.' .. i)) end
        redis.call('HDEL', k, 'children', 'children_left')
      end
      leave_dlq(id, redis.call('HGET', k, 'opts'))
      reset(k)
      redis.call('HSET', k, 'state', 'waiting', 'deps_left', deps)
      if deps == 0 then roots[#roots + 1] = id end
    end
  else
    local kept = state(name)
    if kept == 'dead' then failed = failed + 1 end
    if kept == 'cancelled' then cancelled = cancelled + 1 end
  end
end
if count == 0 then return {'nothing'} end

redis.call('HDEL', rk, 'finished', 'cancel')
redis.call('HSET', rk, 'state', 'running', 'open', count, 'failed', failed, 'cancelled', cancelled)
redis.call('HINCRBY', rk, 'resumes', 1)
redis.call('DEL', rk .. ':done')
for _, id in ipairs(roots) do
  if resolve(id, now, run_id) then on_terminal(id, now) end  -- skipped at once (its `when`/`after` cannot hold)
end
return {'resumed', count}
