-- Someone waits for a job: return its state when it has ended, else flag it so that its end is
-- published on the done channel. ARGV: job id. Returns the state, or false when there is no job.
-- A lean job without a record is only flagged (a record holding `w` alone): its start and its end read the
-- flag, and nothing else changes (see lean_id in common.lua).
local id = ARGV[1]
local k = job_key(id)
local state = redis.call('HGET', k, 'state')
if state then
  if not TERMINAL[state] then redis.call('HSET', k, 'w', '1') end
  return state
end
local q, p, eid = lean_parts(id)
if not q then return false end
local stream = stream_key(q, p)
local e = redis.call('XRANGE', stream, eid, eid)[1]
if not e or entry_job(stream, eid, e[2]) ~= id then return false end
redis.call('HSET', k, 'w', '1')
if holder_of(stream, eid) then return 'running' end
return 'queued'
