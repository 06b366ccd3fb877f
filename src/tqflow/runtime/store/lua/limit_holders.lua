-- A namespace's semaphores kept by a tqflow before the holders became a set (`:limit:M:h`, a zset of job id
-- -> lease end; lua/limits.lua) are folded into the set layout once, when a worker starts (worker.py): the
-- holders whose lease had not run out join `:limit:M:s`, the bound `:e` takes the earliest of their lease
-- ends, the zset goes. Without it those slots would be forgotten: their jobs still run, and new ones could
-- start beside them over the limit. The first worker does it (`:limit:layout` then says `set`); a worker of
-- the old layout still running meanwhile keeps its own holders apart (upgrade workers together).
-- KEYS[1] the layout marker (Keys.limit_layout), KEYS[2] the limiters' index (Keys.limit_keys). ARGV: now.
-- Returns how many holders it moved, or -1 when the namespace had been migrated already.
refuse_when_full()
if redis.call('SET', KEYS[1], 'set', 'NX') == false then return -1 end
local now = tonumber(ARGV[1])
local moved = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local base = prefix .. ':limit:' .. m
  local old = base .. ':h'
  if redis.call('TYPE', old).ok == 'zset' then
    local live = redis.call('ZRANGEBYSCORE', old, now, '+inf', 'WITHSCORES')
    for i = 1, #live, 2 do
      redis.call('SADD', base .. ':s', live[i])
      redis.call('ZADD', base .. ':e', 'LT', live[i + 1], 'lease')
      moved = moved + 1
    end
    redis.call('DEL', old)
  end
end
return moved
