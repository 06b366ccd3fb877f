-- The ends of attempts, each fenced by its token: succeeded, retry, dead, skipped or cancelled.
-- ARGV: now, ttl ms of finished standalone records, worker name, then 13 fields an attempt: job id, token,
--   outcome, payload (result, error JSON or reason), retry due ms, dead-letter queue name, started ms, task,
--   arguments, options (these four, and the worker, are what a lean job's first attempt, which has no
--   record, writes at its end: the arguments and options the entry held, '' when not sent), then for an
--   attempt started from a record what its start gave (start_entry's row) in the last five: stream, entry,
--   run, parent and dependents, which its end then does not read ('' a stream: it reads them).
-- Returns one status an attempt: the outcome applied, or "stale" when the attempt is not the job's own.
run_when_full()
lim_batch = true  -- the slots its attempts give back are written once (limits.lua)
local now, ttl, worker = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local out, acks = {}, {ack = {}}
-- one `by` for every attempt (finish_attempt reads it and keeps nothing); the times stay the strings they came
-- as (a started time that is not an integer counts as none, as tonumber made it)
local by = {worker = worker, now = ARGV[1], ttl = ARGV[2]}
for i = 4, #ARGV, 13 do
  local started = ARGV[i + 6]
  if not string.find(started, '^%d+$') then started = nil end
  by.started, by.task, by.args, by.opts = started, ARGV[i + 7], ARGV[i + 8], ARGV[i + 9]
  by.stream, by.entry, by.run, by.parent, by.dependents = ARGV[i + 8], ARGV[i + 9], ARGV[i + 10], ARGV[i + 11],
    ARGV[i + 12]
  out[#out + 1] = finish_attempt(now, ttl, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4]),
    ARGV[i + 5], acks, by, KEYS[(i - 4) / 13 + 1])  -- KEYS: each attempt's job key (store/calls.py)
end
ack_all(acks)
lim_flush()
return out
