-- Graceful shutdown: give back everything this worker holds in one stream's pending list.
-- KEYS[1] stream, KEYS[2] leases zset. ARGV: now, worker name, count.
-- Running attempts of this worker lose their token (a finish arriving later is refused) and their jobs
-- go back on the stream at once; entries read but not started go back too. Returns how many went back.
local now, me, count = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local stream = KEYS[1]
local back = 0
for _, p in ipairs(redis.call('XPENDING', stream, GROUP, '-', '+', count, me)) do
  local entry = p[1]
  local found = redis.call('XRANGE', stream, entry, entry)
  local id = found[1] and entry_job(stream, entry, found[1][2])
  if id then state_of(id) end  -- a lean entry read but not started gets its record before it goes
  redis.call('XACK', stream, GROUP, entry)
  redis.call('XDEL', stream, entry)
  if id then
    local state, worker, current = unpack(redis.call('HMGET', job_key(id), 'state', 'worker', 'entry'))
    if (state == 'running' and worker == me and current == entry) or state == 'queued' then
      redis.call('HSET', job_key(id), 'token', '', 'worker', '')
      redis.call('ZREM', KEYS[2], id)
      push(id, now)
      back = back + 1
    end
  end
end
return back
