-- Recovery and work stealing over one page of a stream's pending list (XPENDING … IDLE).
-- KEYS[1] stream, KEYS[2] leases zset. ARGV: now, min idle ms, count, start id,
-- max deliveries, steal idle ms (0 = do not steal), this worker's name, when it was sent (Redis's clock,
-- ms), max age ms.
-- A pending entry is given back to the stream (a new entry, the old one acked and deleted) when
--   * its job runs under a worker that is dead (no registry record) or whose lease ran out: the attempt
--     is void (token cleared, so its late finish is refused); after `max deliveries` lost attempts the job
--     is dead-lettered instead (it keeps killing its workers);
--   * its job was read but never started by a dead worker, or (stealing) by a live one for too long.
-- Entries whose job moved on (terminal, or another entry) are acked and deleted (no orphans).
-- Returns {reclaimed, dead-lettered, stolen, cleaned, last entry id seen or ''}.
-- The default dead-letter queue (common.lua's `dlq_key` is a key or a function of the queue name).
refuse_when_full()
-- A call that reaches Redis long after it was made (held up by an outage: Redis stopped, then resumed)
-- judges workers by a silence its caller shared: it changes nothing (F22, cluster/contact.py).
if clock_ms() - tonumber(ARGV[8]) > tonumber(ARGV[9]) then return {0, 0, 0, 0, ''} end
local function default_dlq() if type(dlq_key) == 'function' then return dlq_key('') end return dlq_key end
local now, min_idle, count = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local max_lost, steal_idle, me = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local stream, leases = KEYS[1], KEYS[2]
local reclaimed, dead, stolen, cleaned = 0, 0, 0, 0
local function alive(worker) return worker and worker ~= '' and redis.call('EXISTS', prefix .. ':worker:' .. worker) == 1 end
local function drop(entry)
  redis.call('XACK', stream, GROUP, entry)
  redis.call('XDEL', stream, entry)
end
local pending = redis.call('XPENDING', stream, GROUP, 'IDLE', min_idle, ARGV[4], '+', count)
local last = ''
for _, p in ipairs(pending) do
  local entry, consumer, idle = p[1], p[2], tonumber(p[3])
  last = entry
  local found = redis.call('XRANGE', stream, entry, entry)
  local id = found[1] and entry_job(stream, entry, found[1][2])
  local state, worker, current, lease_until
  if id then
    state_of(id)  -- a lean entry read but never started gets its record (then it is given back)
    state, worker, current, lease_until = unpack(redis.call('HMGET', job_key(id), 'state', 'worker', 'entry', 'lease_until'))
  end
  if not state then
    drop(entry); cleaned = cleaned + 1
  elseif state == 'running' and current == entry then
    if not alive(worker) or tonumber(lease_until or '0') < now then
      drop(entry)
      redis.call('ZREM', leases, id)
      release_held(job_key(id), id, now, redis.call('HGET', job_key(id), 'lh'))  -- its attempt is void: so are its slots
      local lost = redis.call('HINCRBY', job_key(id), 'lost', 1)
      if lost >= max_lost then
        local err = cjson.encode({type = 'WorkerLost', message = 'its worker died or lost its lease ' .. lost .. ' times'})
        redis.call('HSET', job_key(id), 'state', 'dead', 'error', err, 'finished', now, 'token', '')
        redis.call('ZADD', default_dlq(), now, id)
        on_terminal(id, now)
        dead = dead + 1
      else
        redis.call('HSET', job_key(id), 'token', '', 'worker', '')
        push(id, now)
        reclaimed = reclaimed + 1
      end
    end
  elseif state == 'queued' then
    if not alive(consumer) then
      drop(entry); push(id, now); reclaimed = reclaimed + 1
    elseif steal_idle > 0 and consumer ~= me and idle >= steal_idle then
      drop(entry); push(id, now); stolen = stolen + 1
    end
  else
    drop(entry); cleaned = cleaned + 1
  end
end
if #pending < count then last = '' end
return {reclaimed, dead, stolen, cleaned, last}
