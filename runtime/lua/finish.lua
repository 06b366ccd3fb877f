-- The end of an attempt, fenced by its token: succeeded, retry (later), dead, or skipped.
-- KEYS[1] job key. ARGV: prefix, now, job id, token, outcome, payload, retry due (ms)
local now = tonumber(ARGV[2])
local id, token, outcome, payload = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local k = KEYS[1]
local state, current, stream, entry = unpack(redis.call('HMGET', k, 'state', 'token', 'stream', 'entry'))
if state ~= 'running' or current ~= token then return 'stale' end
redis.call('XACK', stream, GROUP, entry)
redis.call('XDEL', stream, entry)
if outcome == 'retry' then
  local due = tonumber(ARGV[7])
  redis.call('HSET', k, 'state', 'retrying', 'error', payload, 'due', due, 'token', '')
  redis.call('ZADD', delayed_key, due, id)
  redis.call('PUBLISH', prefix .. ':delayed:wake', due)
  return 'retrying'
end
if outcome == 'succeeded' then
  redis.call('HSET', k, 'state', 'succeeded', 'result', payload, 'finished', now, 'token', '')
elseif outcome == 'dead' then
  redis.call('HSET', k, 'state', 'dead', 'error', payload, 'finished', now, 'token', '')
  redis.call('ZADD', dlq_key, now, id)
elseif outcome == 'skipped' then
  redis.call('HSET', k, 'state', 'skipped', 'reason', payload, 'finished', now, 'token', '')
else
  return redis.error_reply('unknown outcome ' .. outcome)
end
on_terminal(id, now)
return outcome
