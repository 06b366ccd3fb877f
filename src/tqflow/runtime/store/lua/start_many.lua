-- Start entries a worker read itself (a blocking XREADGROUP). ARGV: prefix, now, worker, token prefix,
-- lease ms, then triples: job id ('' when the entry has no `j` field: a lean entry, or a malformed one),
-- stream, entry id. Returns the started attempts (see start_entry).
refuse_when_full()
local now, worker, token, lease = tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
local started = {}
for i = 6, #ARGV, 3 do
  local id = ARGV[i]
  if id == '' then id = nil end
  local job = start_guarded(id, ARGV[i + 1], ARGV[i + 2], worker, token .. i, now, lease)
  if job then started[#started + 1] = job end
end
return started
