-- The ends of attempts, each fenced by its token: succeeded, retry, dead, skipped or cancelled.
-- ARGV: prefix, now, ttl ms of finished standalone records, then 6 fields an attempt:
--   job id, token, outcome, payload (result, error JSON or reason), retry due ms, dead-letter queue name.
-- Returns one status an attempt: the outcome applied, or "stale" when the attempt is not the job's own.
local now, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV, 6 do
  local id, token, outcome, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local k = job_key(id)
  local state, current, stream, entry, cancel = unpack(redis.call('HMGET', k, 'state', 'token', 'stream', 'entry',
    'cancel'))
  if state ~= 'running' or current ~= token then
    out[#out + 1] = 'stale'
  else
    redis.call('XACK', stream, GROUP, entry)
    redis.call('XDEL', stream, entry)
    if cancel == '1' and outcome ~= 'succeeded' then outcome, payload = 'cancelled', 'cancelled while running' end
    if outcome == 'retry' then
      local due = tonumber(ARGV[i + 4])
      redis.call('HSET', k, 'error', payload, 'token', '')
      if due <= now then push(id, now) else delay_job(k, id, 'retrying', due) end
    else
      if outcome == 'succeeded' then
        redis.call('HSET', k, 'state', 'succeeded', 'result', payload, 'finished', now, 'token', '')
      elseif outcome == 'dead' then
        local dlq = ARGV[i + 5]
        redis.call('HSET', k, 'state', 'dead', 'error', payload, 'finished', now, 'token', '')
        redis.call('ZADD', dlq_key(dlq), now, id)
        if dlq ~= '' then redis.call('SADD', prefix .. ':dlqs', dlq) end
      elseif outcome == 'skipped' or outcome == 'cancelled' then
        redis.call('HSET', k, 'state', outcome, 'reason', payload, 'finished', now, 'token', '')
      else
        return redis.error_reply('unknown outcome ' .. outcome)
      end
      on_terminal(id, now)
      expire_finished(k, outcome, ttl)
    end
    out[#out + 1] = outcome
  end
end
return out
