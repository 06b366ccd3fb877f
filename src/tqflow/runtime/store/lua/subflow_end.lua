-- End a sub-flow job's try (state `collecting` after its child run ended, or `starting` when its child
-- could not be started): `succeeded` with the child's outputs as its result, `retry` (a new child run at
-- `due`, through the delayed set when later than now), or `dead` (not dead-lettered: the child's own failed
-- jobs are). Fenced by the state and the child run id ('' for a start that failed), so a repeat does nothing.
-- KEYS[1] the job's record. ARGV: now, job id, child run id, outcome, payload (result or error JSON), due ms.
-- Returns the outcome applied, or 'stale'.
refuse_when_full()
local now, id, child, outcome, payload, due = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[5],
  tonumber(ARGV[6] or '0')
local k = KEYS[1]
local state, current = unpack(redis.call('HMGET', k, 'state', 'child'))
if state == 'collecting' then
  if current ~= child then return 'stale' end
elseif state ~= 'starting' or child ~= '' then
  return 'stale'
end
redis.call('ZREM', subflows_key, id)
if outcome == 'retry' then
  redis.call('HSET', k, 'error', payload)
  if due <= now then start_subflow(k, id, now) else delay_job(k, id, 'retrying', due) end
  return outcome
end
if outcome == 'succeeded' then
  redis.call('HSET', k, 'state', 'succeeded', 'result', payload, 'finished', now)
  redis.call('HDEL', k, 'error')
elseif outcome == 'dead' then
  redis.call('HSET', k, 'state', 'dead', 'error', payload, 'finished', now)
else
  return redis.error_reply('unknown outcome ' .. outcome)
end
on_terminal(id, now)
return outcome
