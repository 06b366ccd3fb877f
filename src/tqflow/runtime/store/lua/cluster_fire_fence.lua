-- Prepended to submit_run.lua to fire one cron tick: only the current leader (checked by its epoch)
-- may fire, and each (trigger, tick) fires once: the trigger's `last` tick only moves forward and the
-- tick key is SET NX. The fence's own KEYS and ARGV are the LAST ones, after submit_run's.
-- KEYS[…-2] leader key, KEYS[…-1] tick key, KEYS[…] trigger hash.
-- ARGV[…-4] "worker:epoch", ARGV[…-3] tick ms, ARGV[…-2] tick key ttl ms, ARGV[…-1] 'run' | 'skip',
-- ARGV[…] the run id (for 'run') or the number of ticks skipped (for 'skip').
do
  local nk, na = #KEYS, #ARGV
  local leader_key, tick_key, trigger_key = KEYS[nk - 2], KEYS[nk - 1], KEYS[nk]
  local holder, tick, ttl, action, detail = ARGV[na - 4], tonumber(ARGV[na - 3]), ARGV[na - 2], ARGV[na - 1], ARGV[na]
  if redis.call('GET', leader_key) ~= holder then return 'fenced' end
  if tonumber(redis.call('HGET', trigger_key, 'last') or '-1') >= tick then return 'duplicate' end
  redis.call('HSET', trigger_key, 'last', tick)
  if action == 'skip' then
    redis.call('HINCRBY', trigger_key, 'skipped', tonumber(detail))
    redis.call('HSET', trigger_key, 'last_skipped', tick)
    return 'skipped'
  end
  if not redis.call('SET', tick_key, detail, 'NX', 'PX', ttl) then return 'duplicate' end
  redis.call('HINCRBY', trigger_key, 'fired', 1)
  redis.call('HSET', trigger_key, 'run', detail, 'last_fired', tick)
end
