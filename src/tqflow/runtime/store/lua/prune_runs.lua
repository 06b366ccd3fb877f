-- Retention: delete the runs that ended more than `keep` ms ago, with everything that names them: the run
-- hash, its done list and kept signals, every job record of the run with its attempt history, the fan-out children of
-- its jobs, and its entry in the runs index. A run with a job still in a dead-letter queue stays until that
-- job is replayed or purged. A run id in the index whose run is gone is removed from it.
-- KEYS[1] the runs index. ARGV: now, keep (ms), then for each run: run id, job count, job names…
-- Returns the number of runs deleted.
local now, keep = tonumber(ARGV[1]), tonumber(ARGV[2])
local runs_key = KEYS[1]
local dlqs = {dlq_of('')}
for _, name in ipairs(redis.call('SMEMBERS', prefix .. ':dlqs')) do table.insert(dlqs, dlq_of(name)) end
local function in_dlq(id)
  for _, key in ipairs(dlqs) do
    if redis.call('ZSCORE', key, id) then return true end
  end
  return false
end

local deleted, i = 0, 3
while i <= #ARGV do
  local run_id, n = ARGV[i], tonumber(ARGV[i + 1])
  local names = {}
  for j = 1, n do names[j] = ARGV[i + 1 + j] end
  i = i + 2 + n
  local rk = run_key(run_id)
  local state, finished = unpack(redis.call('HMGET', rk, 'state', 'finished'))
  if not state then
    redis.call('ZREM', runs_key, run_id)
  elseif (state == 'succeeded' or state == 'failed' or state == 'cancelled') and finished
      and tonumber(finished) + keep <= now then
    local ids, held = {}, false
    for _, name in ipairs(names) do
      local id = run_id .. '.' .. name
      table.insert(ids, id)
      local children = tonumber(redis.call('HGET', job_key(id), 'children') or '0') or 0
      for c = 0, children - 1 do table.insert(ids, id .. '.' .. c) end
    end
    for _, id in ipairs(ids) do
      if redis.call('HGET', job_key(id), 'state') == 'dead' and in_dlq(id) then held = true; break end
    end
    if not held then
      for _, id in ipairs(ids) do redis.call('DEL', job_key(id), job_key(id) .. ':attempts') end
      redis.call('DEL', rk, rk .. ':done', rk .. ':signals')
      redis.call('ZREM', runs_key, run_id)
      deleted = deleted + 1
    end
  end
end
return deleted
