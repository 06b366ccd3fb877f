-- Aging: a normal, low or batch entry that waited `aging ms` on its stream (and that no worker has read
-- yet) moves to the end of the target level's stream (critical by default), so a flood of higher-priority
-- work cannot hold it back past the bound. KEYS: the streams to age (levels below the target).
-- ARGV: now, aging ms, target level.
refuse_when_full()
local now, aging, top = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local moved = 0
for i = 1, #KEYS do
  local s = KEYS[i]
  local q, level = string.match(s, ':q:(.+):(' .. LEVEL .. ')$')
  if q and redis.call('EXISTS', s) == 1 then
      local last = '0-0'
      for _, g in ipairs(redis.call('XINFO', 'GROUPS', s)) do
        local name, delivered
        for j = 1, #g, 2 do
          if g[j] == 'name' then name = g[j + 1] elseif g[j] == 'last-delivered-id' then delivered = g[j + 1] end
        end
        if name == GROUP then last = delivered end
      end
      for _, e in ipairs(redis.call('XRANGE', s, '(' .. last, now - aging, 'COUNT', 200)) do
        local id = entry_job(s, e[1], e[2])
        if id then
          local k = job_key(id)
          state_of(id)  -- a lean job gets its record before it moves (its id names this entry)
          local state, entry = unpack(redis.call('HMGET', k, 'state', 'entry'))
          if state == 'queued' and entry == e[1] then
            redis.call('XDEL', s, e[1])
            redis.call('HSET', k, 'prio', top, 'aged', level)
            push_to(k, id, q, top, now)
            moved = moved + 1
          end
        end
      end
  end
end
return moved
