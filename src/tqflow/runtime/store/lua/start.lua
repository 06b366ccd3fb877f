-- Start one entry a worker read (the single-job form of start_many.lua).
-- KEYS[1] job key. ARGV: prefix, now, job id ('' for a lean entry: found from the entry), stream, entry id,
-- worker, token, lease ms.
-- Returns the attempt (see start_entry) or nil when the entry was stale.
refuse_when_full()
local id = ARGV[3]
if id == '' then id = nil end
return start_guarded(id, ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[2]), tonumber(ARGV[8]))
