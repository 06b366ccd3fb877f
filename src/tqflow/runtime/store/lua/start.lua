-- Start one entry a worker read (the single-job form of start_many.lua).
-- KEYS[1] stream, KEYS[2] job key. ARGV: now, job id ('' for a lean entry: found from the entry), entry id,
-- worker, token, lease ms.
-- Returns the attempt (see start_entry) or nil when the entry was stale.
refuse_when_full()
local id = ARGV[2]
if id == '' then id = nil end
return start_guarded(id, KEYS[1], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[1]), tonumber(ARGV[6]))
