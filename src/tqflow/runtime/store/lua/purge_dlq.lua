-- `tqc dlq purge`: take dead-lettered jobs out of a dead-letter queue for good. A standalone job's record and
-- attempt history are deleted; a flow job's record stays with its run, which retention then prunes with all
-- its jobs (prune_runs.lua keeps a run only while one of its jobs is in a dead-letter queue).
-- KEYS[1] the dead-letter queue. ARGV: job ids (none: every job of the queue). Returns how many.
local ids = {}
for i = 1, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then ids = redis.call('ZRANGE', KEYS[1], 0, -1) end
local purged = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    purged = purged + 1
    local k = job_key(id)
    local state, run = unpack(redis.call('HMGET', k, 'state', 'run'))
    if state == 'dead' and (not run or run == '') then redis.call('DEL', k, k .. ':attempts') end
  end
end
return purged
