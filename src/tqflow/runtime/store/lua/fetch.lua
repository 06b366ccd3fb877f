-- Read up to a number of entries from each stream in the given order (the worker's weighted plan),
-- then fill what is left from the streams in order, and start every job read (see start_entry).
-- KEYS: the streams, in that order. ARGV: now, worker, token prefix, lease ms, wanted, then one count a stream.
refuse_when_full()
local now, worker, token, lease, wanted = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local started, got, n = {}, 0, 0
local function read(stream, count)
  if count <= 0 then return 0 end
  local reply = redis.call('XREADGROUP', 'GROUP', GROUP, worker, 'COUNT', count, 'STREAMS', stream, '>')
  if not reply then return 0 end
  local entries = reply[1][2]
  for _, e in ipairs(entries) do
    local id = entry_job(stream, e[1], e[2])
    n = n + 1
    local job = start_guarded(id, stream, e[1], worker, token .. n, now, lease, e[2])
    if job then started[#started + 1] = job end
  end
  return #entries
end
local empty = {}
for i = 1, #KEYS do
  local count = tonumber(ARGV[i + 5])
  local read_n = read(KEYS[i], math.min(count, wanted - got))
  got = got + read_n
  if read_n < count then empty[KEYS[i]] = true end
end
for i = 1, #KEYS do
  if got >= wanted then break end
  if not empty[KEYS[i]] then
    local read_n = read(KEYS[i], wanted - got)
    got = got + read_n
  end
end
return started
