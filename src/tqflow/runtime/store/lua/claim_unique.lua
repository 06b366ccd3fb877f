-- A flow job's `unique key=…, within=…, conflict=…`, claimed by its first attempt (fenced by its token):
-- the key is SET NX PX; on a clash, skip or reject (the worker ends the job so), or replace (the holder is
-- cancelled if it has not started, and the key moves here).
-- ARGV: now, job id, token, key, ttl ms, conflict. Returns ok | skip:<holder> | reject:<holder> | stale
local now, id, token, key, ttl, conflict = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local k = job_key(id)
if redis.call('HGET', k, 'token') ~= token then return 'stale' end
local uk = prefix .. ':u:' .. key
local holder = redis.call('GET', uk)
if holder and holder ~= id then
  if conflict == 'reject' then return 'reject:' .. holder end
  if conflict ~= 'replace' then return 'skip:' .. holder end
  cancel_idle(holder, now, 'replaced by ' .. id)
end
redis.call('SET', uk, id, 'PX', ttl)
redis.call('HSET', k, 'ukey', key)
return 'ok'
