-- A worker is alive: refresh its registry record and renew the lease of every job it still holds.
-- KEYS[1] workers zset, KEYS[2] this worker's hash, KEYS[3] leases zset.
-- ARGV: now, worker name, record ttl ms, lease ms, record fields (JSON object), job ids…
-- Returns the ids it no longer holds (reclaimed after a pause: the job names another worker or none): their
-- attempts are lost. A job this worker just ended (its finish landed before this beat) is not lost.
run_when_full()
local now, name, ttl, lease = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local fields = {}
for field, value in pairs(cjson.decode(ARGV[5])) do
  table.insert(fields, field); table.insert(fields, value)
end
redis.call('HSET', KEYS[2], 'heartbeat', now, unpack(fields))
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[1], now, name)
local lost = {}
for i = 6, #ARGV do
  local id = ARGV[i]
  local k = job_key(id)
  local state, worker = unpack(redis.call('HMGET', k, 'state', 'worker'))
  -- a lean job's first attempt, running past a beat: it gets its record (and lease) now, or the record made
  -- while it was queued (a dependent's) says `running` now (state_of: the delivery started it)
  if not state or state == 'queued' then
    state_of(id)
    state, worker = unpack(redis.call('HMGET', k, 'state', 'worker'))
  end
  if state == 'running' and worker == name then
    -- its concurrency slots are leased with it: a full semaphore reads this lease_until (limits.lua)
    redis.call('HSET', k, 'lease_until', now + lease)
    redis.call('ZADD', KEYS[3], now + lease, id)
  elseif worker ~= name then
    table.insert(lost, id)
  end
end
return lost
