-- Send a signal to a run's signal job: its payload (checked by the caller against the job's type) is the
-- job's result at once when the job is awaiting it; when the job has not been reached yet it is kept in the
-- run's :signals hash and delivered when it is (one payload a job: a second one is refused).
-- KEYS[1] run key, KEYS[2] the job's record, KEYS[3] the run's signals hash, KEYS[4] the awaiting index,
-- KEYS[5] the delayed set. ARGV: now, run id, job name, payload.
-- Returns {'delivered'} | {'kept'} | {'missing'} (no run) | {'not_signal'} (no such signal job)
--       | {'ended', run state} (the run is over) | {'refused', job state} (received, timed out, skipped …)
refuse_when_full()
local now, run_id, name, payload = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local run_state = redis.call('HGET', KEYS[1], 'state')
if not run_state then return {'missing'} end
local id = run_id .. '.' .. name
local state, signal = unpack(redis.call('HMGET', KEYS[2], 'state', 'signal'))
if not signal then return {'not_signal'} end
if state == 'awaiting' then
  stop_awaiting(id)
  redis.call('HSET', KEYS[2], 'state', 'succeeded', 'result', payload, 'finished', now)
  redis.call('HDEL', KEYS[2], 'due')
  on_terminal(id, now)
  return {'delivered'}
end
if run_state ~= 'running' then return {'ended', run_state} end
if state == 'waiting' then
  if redis.call('HSETNX', KEYS[3], name, payload) == 0 then return {'refused', 'kept'} end
  return {'kept'}
end
return {'refused', state or 'missing'}
