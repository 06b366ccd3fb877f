-- Start entries a worker read itself (a blocking XREADGROUP). KEYS: the stream of each entry.
-- ARGV: now, worker, token prefix, lease ms, then pairs: job id ('' when the entry has no `j` field: a lean
-- entry, or a malformed one), entry id (of the stream KEYS names at the same place). Returns the started
-- attempts (see start_entry).
refuse_when_full()
lim_batch = true  -- its starts' limits are read and written once (limits.lua)
local now, worker, token, lease = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local started = {}
for i = 1, #KEYS do
  local id = ARGV[3 + 2 * i]
  if id == '' then id = nil end
  local job = start_guarded(id, KEYS[i], ARGV[4 + 2 * i], worker, token .. i, now, lease)
  if job then started[#started + 1] = job end
end
lim_flush()
return started
