-- Change the priority of jobs that have not started. A queued job moves to the end of its new level's
-- stream (its old entry goes; if a worker already read it, the start script drops it as stale).
-- ARGV: now, new level, then job ids. Returns one status a job: moved | updated | <state> | missing
refuse_when_full()
local now, level = tonumber(ARGV[1]), ARGV[2]
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local k = job_key(id)
  state_of(id)  -- a queued lean job gets its record first, so its id still finds it once moved
  local state, q, p, entry, enqueued, fq, opts = unpack(redis.call('HMGET', k, 'state', 'queue', 'prio', 'entry',
    'enqueued', 'fq', 'opts'))
  if not state then
    out[#out + 1] = 'missing'
  elseif state == 'queued' and fq == '1' then  -- waiting in its fair key's list: into the new level's
    if p ~= level then
      fair_remove(q, p, id, opts)
      redis.call('HSET', k, 'prio', level)
      make_ready(k, id, q, level, now, opts)
      if enqueued then redis.call('HSET', k, 'enqueued', enqueued) end
    end
    out[#out + 1] = 'moved'
  elseif state == 'queued' then
    if p ~= level then
      redis.call('XDEL', stream_key(q, p), entry)
      redis.call('HSET', k, 'prio', level)
      push_to(k, id, q, level, now)
      -- it keeps its enqueue time (wait metrics and `enqueued` count from the submission, not the move)
      if enqueued then redis.call('HSET', k, 'enqueued', enqueued) end
    end
    out[#out + 1] = 'moved'
  elseif state == 'scheduled' or state == 'retrying' or state == 'waiting' then
    redis.call('HSET', k, 'prio', level)
    out[#out + 1] = 'updated'
  else
    out[#out + 1] = state
  end
end
return out
