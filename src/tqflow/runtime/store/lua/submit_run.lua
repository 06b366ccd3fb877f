-- Create a run and its jobs, and start the jobs that wait for nothing. All or nothing.
-- KEYS[1] run key, KEYS[2] the runs index. ARGV: now, run id, run fields (JSON object), then the jobs
-- (common.lua run_jobs: flat, or an older tqflow's JSON list of objects)
local now = tonumber(ARGV[1])
local run_id = ARGV[2]
local run = cjson.decode(ARGV[3])
if redis.call('EXISTS', KEYS[1]) == 1 then
  -- a re-sent submit whose first send landed (runtime/resend.py): its nonce, `sub`, is the run's
  if run.sub ~= nil and redis.call('HGET', KEYS[1], 'sub') == run.sub then return 0 end
  return redis.error_reply('run ' .. run_id .. ' already exists')
end
local jobs, items = run_jobs(ARGV, 4)
return create_run(KEYS[1], KEYS[2], now, run_id, run, jobs, ARGV[1], items)
