-- A worker read a stream entry: make the attempt its own (new token), or drop a stale entry.
-- KEYS[1] job key. ARGV: prefix, now, job id, stream, entry id, worker, token, lease ms
local now = tonumber(ARGV[2])
local id, stream, entry, worker, token = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local k = KEYS[1]
if redis.call('HGET', k, 'state') ~= 'queued' then
  redis.call('XACK', stream, GROUP, entry)
  redis.call('XDEL', stream, entry)
  return false
end
local attempt = redis.call('HINCRBY', k, 'attempt', 1)
redis.call('HSET', k, 'state', 'running', 'token', token, 'worker', worker, 'started', now,
  'lease_until', now + tonumber(ARGV[8]), 'stream', stream, 'entry', entry)
local f = redis.call('HMGET', k, 'task', 'args', 'run', 'name', 'retry', 'timeout_ms', 'when', 'data_deps', 'flow',
  'queue', 'prio', 'enqueued')
local run_id = f[3]
local outputs = {}
for _, dep in ipairs(cjson.decode(f[8] or '[]')) do
  outputs[dep] = redis.call('HGET', job_key(run_id .. '.' .. dep), 'result') or cjson.null
end
local params = cjson.null
if run_id and run_id ~= '' then params = redis.call('HGET', run_key(run_id), 'params') or cjson.null end
return cjson.encode({attempt = attempt, task = f[1], args = f[2], run = run_id, name = f[4], retry = f[5],
  timeout_ms = f[6], when = f[7], flow = f[9], queue = f[10], prio = tonumber(f[11]), enqueued = tonumber(f[12]),
  outputs = outputs, params = params})
