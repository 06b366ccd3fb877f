-- Leader election with a lease and an epoch (the fencing token).
-- KEYS[1] leader key ("worker:epoch"), KEYS[2] epoch counter. ARGV: now, worker name, lease ms,
-- the epoch this worker believes it leads with (0 = none), resign (1 = give the lease up).
-- Returns the epoch this worker now leads with, or 0 when another worker leads.
local name, lease, mine, resign = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5] == '1'
local current = redis.call('GET', KEYS[1])
if current and current == name .. ':' .. mine then
  if resign then redis.call('DEL', KEYS[1]); return 0 end
  redis.call('PEXPIRE', KEYS[1], lease)
  return tonumber(mine)
end
if current or resign then return 0 end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], name .. ':' .. epoch, 'PX', lease)
return epoch
