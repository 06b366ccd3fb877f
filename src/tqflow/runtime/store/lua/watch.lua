-- Someone waits for a job: return its state when it has ended, else flag it so that its end is
-- published on the done channel. ARGV: job id. Returns the state, or false when there is no job.
local k = job_key(ARGV[1])
local state = state_of(ARGV[1])  -- a queued lean job gets its record: the flag needs one
if not state then return false end
if not TERMINAL[state] then redis.call('HSET', k, 'w', '1') end
return state
