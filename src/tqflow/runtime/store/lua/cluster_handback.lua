-- Graceful shutdown: give back everything this worker holds in one stream's pending list.
-- KEYS[1] stream, KEYS[2] leases zset. ARGV: now, worker name, count.
-- Running attempts of this worker lose their token (a finish arriving later is refused) and their jobs
-- go back on the stream at once; entries read but not started go back too. Returns how many went back.
-- ARGV[4] (optional) max deliveries, then the ids of jobs to blame: the worker is going down because it
-- crashed (its fetch loop raised), so the running attempts of those jobs count as a lost delivery and are
-- dead-lettered `WorkerLost` at the limit, as when recovery reclaims a dead worker's job (F15: a crash loop
-- re-queued the same entry forever, uncounted). Other jobs go back uncounted.
run_when_full()
local now, me, count = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local max_lost = tonumber(ARGV[4] or '0') or 0
local blamed = {}
for i = 5, #ARGV do blamed[ARGV[i]] = true end
local function default_dlq() if type(dlq_key) == 'function' then return dlq_key('') end return dlq_key end
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
    local running = state == 'running' and worker == me and current == entry
    if running or state == 'queued' then
      redis.call('ZREM', KEYS[2], id)
      if running then release_held(job_key(id), id, now, redis.call('HGET', job_key(id), 'lh')) end
      local lost = 0
      if running and max_lost > 0 and blamed[id] then lost = redis.call('HINCRBY', job_key(id), 'lost', 1) end
      if max_lost > 0 and lost >= max_lost then
        local err = cjson.encode({type = 'WorkerLost',
          message = 'its worker crashed or died ' .. lost .. ' times while running it'})
        redis.call('HSET', job_key(id), 'state', 'dead', 'error', err, 'finished', now, 'token', '', 'worker', '')
        redis.call('ZADD', default_dlq(), now, id)
        on_terminal(id, now)
      else
        redis.call('HSET', job_key(id), 'token', '', 'worker', '')
        push(id, now)
        back = back + 1
      end
    end
  end
end
return back
