-- Move delayed jobs that are due onto their streams, fail signal jobs whose timeout came, and let go the
-- jobs waiting for a limiter whose timer is due (limits.lua). Returns {moved, next due ms or -1}.
-- KEYS[1] delayed key, KEYS[2] the limiters' timer zset. ARGV: now, limit
refuse_when_full()
local now = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  local state = redis.call('HGET', job_key(id), 'state')
  if state == 'scheduled' or state == 'retrying' then push(id, now)
  elseif state == 'awaiting' then time_out_signal(id, now) end
end
local moved = #due
if KEYS[2] then moved = moved + release_due(now, tonumber(ARGV[2])) end
local next_due = -1
for i = 1, #KEYS do
  local nxt = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  if nxt[2] and (next_due < 0 or tonumber(nxt[2]) < next_due) then next_due = tonumber(nxt[2]) end
end
return {moved, next_due}
