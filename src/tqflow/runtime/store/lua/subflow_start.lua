-- Start the child run of a sub-flow job waiting in the :subflows outbox (state `starting`): the job waits
-- for it in state `child` (holding no worker) and the run remembers its parent job (`parent_job`), whose
-- end its own end brings about (common.lua subflow_child_ended). Fenced: the job must still be starting and
-- `launch` must be its next launch number (the child's id is derived from it), so a repeat does nothing.
-- KEYS[1] the job's record, KEYS[2] the child run key, KEYS[3] the runs index.
-- ARGV: now, job id, launch, child run id, run fields (JSON), then the jobs (common.lua run_jobs). Returns 'started' | 'stale'.
refuse_when_full()
local now, id, launch, child = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4]
local state, launches, attempt = unpack(redis.call('HMGET', KEYS[1], 'state', 'launches', 'attempt'))
if state ~= 'starting' or (tonumber(launches) or 0) + 1 ~= launch then return 'stale' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'stale' end
redis.call('ZREM', subflows_key, id)
redis.call('HSET', KEYS[1], 'state', 'child', 'child', child, 'launches', launch,
  'attempt', (tonumber(attempt) or 0) + 1, 'started', now)
redis.call('HDEL', KEYS[1], 'child_state')
local run = cjson.decode(ARGV[5])
run.parent_job = id
local jobs, items = run_jobs(ARGV, 6)
create_run(KEYS[2], KEYS[3], now, child, run, jobs, ARGV[1], items)
return 'started'
