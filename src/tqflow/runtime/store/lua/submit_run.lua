-- Create a run and its jobs, and start the jobs that wait for nothing. All or nothing.
-- KEYS[1] run key, KEYS[2] the runs index. ARGV: now, run id, run fields (JSON object), jobs (JSON list of objects)
local now = tonumber(ARGV[1])
local run_id = ARGV[2]
local rk = KEYS[1]
if redis.call('EXISTS', rk) == 1 then return redis.error_reply('run ' .. run_id .. ' already exists') end
local run = cjson.decode(ARGV[3])
local jobs = cjson.decode(ARGV[4])
local fields = {}
for name, value in pairs(run) do table.insert(fields, name); table.insert(fields, value) end
redis.call('HSET', rk, 'state', 'running', 'created', now, 'open', #jobs, 'failed', 0, unpack(fields))
redis.call('ZADD', KEYS[2], now, run_id)
local roots = {}
for _, job in ipairs(jobs) do
  local id = run_id .. '.' .. job.name
  local jf = {'id', id, 'run', run_id, 'state', 'waiting', 'attempt', 0, 'created', now}
  for name, value in pairs(job) do table.insert(jf, name); table.insert(jf, value) end
  redis.call('HSET', job_key(id), unpack(jf))
  if tonumber(job.deps_left) == 0 then table.insert(roots, id) end
end
for _, id in ipairs(roots) do
  if schedule(id, now) then on_terminal(id, now) end
end
if #jobs == 0 then
  redis.call('HSET', rk, 'state', 'succeeded', 'finished', now)
  redis.call('RPUSH', rk .. ':done', 'succeeded')
  redis.call('EXPIRE', rk .. ':done', 86400)
end
return #roots
