-- Cancel a run: flag it (it ends "cancelled") and cancel its jobs that have not ended.
-- ARGV: now, run id, then job names. Returns the run's state, or false when there is no run.
local now, run_id = tonumber(ARGV[1]), ARGV[2]
local rk = run_key(run_id)
local state = redis.call('HGET', rk, 'state')
if not state then return false end
if state ~= 'running' then return state end
redis.call('HSET', rk, 'cancel', '1')
for i = 3, #ARGV do cancel_job(run_id .. '.' .. ARGV[i], now, 'run cancelled') end
return redis.call('HGET', rk, 'state')
