-- Move delayed jobs that are due onto their streams; fail signal jobs whose timeout came. Returns {moved, next due ms or -1}.
-- KEYS[1] delayed key. ARGV: now, limit
refuse_when_full()
local now = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  local state = redis.call('HGET', job_key(id), 'state')
  if state == 'scheduled' or state == 'retrying' then push(id, now)
  elseif state == 'awaiting' then time_out_signal(id, now) end
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local next_due = -1
if nxt[2] then next_due = tonumber(nxt[2]) end
return {#due, next_due}
