-- Recovery of running jobs whose lease ran out, found by the leases index rather than the pending list
-- (a job whose entry was acked by someone else is still found here).
-- KEYS[1] leases zset. ARGV: now, count, max deliveries, sent (Redis's clock, ms), max age ms.
-- Returns {reclaimed, dead-lettered}.
-- The default dead-letter queue (common.lua's `dlq_key` is a key or a function of the queue name).
refuse_when_full()
-- held up by an outage past its max age: it changes nothing (as cluster_reclaim.lua)
if clock_ms() - tonumber(ARGV[4]) > tonumber(ARGV[5]) then return {0, 0} end
local function default_dlq() if type(dlq_key) == 'function' then return dlq_key('') end return dlq_key end
local now, count, max_lost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local reclaimed, dead = 0, 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, count)) do
  local k = job_key(id)
  local state, lease_until, stream, entry = unpack(redis.call('HMGET', k, 'state', 'lease_until', 'stream', 'entry'))
  if state ~= 'running' then
    redis.call('ZREM', KEYS[1], id)
  elseif tonumber(lease_until or '0') >= now then
    redis.call('ZADD', KEYS[1], lease_until, id)
  else
    redis.call('ZREM', KEYS[1], id)
    if stream and entry then
      redis.call('XACK', stream, GROUP, entry)
      redis.call('XDEL', stream, entry)
    end
    release_held(k, id, now, redis.call('HGET', k, 'lh'))  -- its attempt is void: so are its slots
    local lost = redis.call('HINCRBY', k, 'lost', 1)
    if lost >= max_lost then
      local err = cjson.encode({type = 'WorkerLost', message = 'its worker died or lost its lease ' .. lost .. ' times'})
      redis.call('HSET', k, 'state', 'dead', 'error', err, 'finished', now, 'token', '')
      redis.call('ZADD', default_dlq(), now, id)
      on_terminal(id, now)
      dead = dead + 1
    else
      redis.call('HSET', k, 'token', '', 'worker', '')
      push(id, now)
      reclaimed = reclaimed + 1
    end
  end
end
return {reclaimed, dead}
