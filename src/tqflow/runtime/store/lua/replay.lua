-- Replay dead-lettered jobs: back to their queue with a fresh attempt count. A flow job replayed this
-- way runs on its own: its run (already ended) is not changed again.
-- ARGV: prefix, now, dead-letter queue name ('' for the default), then job ids.
-- Returns one status a job: replayed | not-dead | missing
refuse_when_full()
local now, dlq = tonumber(ARGV[2]), ARGV[3]
local out = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local k = job_key(id)
  local state, run_id, parent, opts = unpack(redis.call('HMGET', k, 'state', 'run', 'parent', 'opts'))
  redis.call('ZREM', dlq_of(dlq), id)
  if not state then
    out[#out + 1] = 'missing'
  elseif state ~= 'dead' then
    out[#out + 1] = 'not-dead'
  else
    redis.call('HSET', k, 'attempt', 0, 'replays', (tonumber(redis.call('HGET', k, 'replays') or '0') + 1))
    redis.call('HDEL', k, 'finished', 'cancel', 'deadline_at')
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
return out
