-- Replay dead-lettered jobs: back to their queue with a fresh attempt count. A flow job replayed this
-- way runs on its own: its run (already ended) is not changed again.
-- ARGV: now, dead-letter queue name ('' for the default), then job ids; or, after the marker '\0seen',
-- pairs: job id, when the dead-lettering the caller saw happened (its `finished` ms).
-- Returns one status a job: replayed | not-dead | missing | already-replayed
-- With pairs, a replay consumes the dead-lettering the caller saw, so one DLQ entry is replayed at most
-- once however many callers replay it at once: a job that died again since is `already-replayed` (40
-- parallel replays of a job failing in 1 ms ran it 14 times).
refuse_when_full()
local now, dlq = tonumber(ARGV[1]), ARGV[2]
local out = {}
local first, step = 3, 1
if ARGV[3] == '\0seen' then first, step = 4, 2 end
for i = first, #ARGV, step do
  local id = ARGV[i]
  local seen = step == 2 and ARGV[i + 1] or ''
  local k = job_key(id)
  local state, run_id, parent, opts, finished = unpack(redis.call('HMGET', k, 'state', 'run', 'parent', 'opts',
    'finished'))
  if seen ~= '' and state == 'dead' and finished ~= seen then
    out[#out + 1] = 'already-replayed'  -- it died again since: that is another DLQ entry
  elseif seen ~= '' and state ~= 'dead' and state then
    out[#out + 1] = 'already-replayed'
  else
    redis.call('ZREM', dlq_of(dlq), id)
    if opts and opts ~= '' then  -- no name given: the job's own named dead-letter queue
      local own = cjson.decode(opts).dlq
      if own and own ~= dlq then redis.call('ZREM', dlq_of(own), id) end
    end
    if not state then
      out[#out + 1] = 'missing'
    elseif state ~= 'dead' then
      out[#out + 1] = 'not-dead'
    else
      redis.call('HSET', k, 'attempt', 0, 'replays', (tonumber(redis.call('HGET', k, 'replays') or '0') + 1))
      redis.call('HDEL', k, 'finished', 'cancel', 'deadline_at', 'error', 'reason')  -- old error: in its attempts
      if (run_id and run_id ~= '') or (parent and parent ~= '') then redis.call('HSET', k, 'replayed', '1') end
      if opts and opts ~= '' then
        local o = cjson.decode(opts)
        if o.dl then redis.call('HSET', k, 'deadline_at', now + o.dl) end
      end
      redis.call('PERSIST', k)
      push(id, now)
      out[#out + 1] = 'replayed'
    end
  end
end
return out
