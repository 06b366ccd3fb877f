-- The ends of attempts, each fenced by its token: succeeded, retry, dead, skipped or cancelled.
-- ARGV: now, ttl ms of finished standalone records, worker name, then each attempt: job id, token, outcome,
--   payload (result, error JSON or reason), retry due ms, dead-letter queue name, started ms, task, then
--   arguments and options (these four, and the worker, are what a lean job's first attempt, which has no
--   record, writes at its end: the arguments and options the entry held, '' when not sent), 10 fields; or,
--   for an attempt started from a record whose start gave them (start_entry's run context), "\0" and then
--   its stream, entry, run, parent and dependents, which its end then does not read: 14 fields.
-- Returns one status an attempt: the outcome applied, or "stale" when the attempt is not the job's own.
run_when_full()
lim_batch = true  -- the slots its attempts give back are written once (limits.lua)
local now, ttl, worker = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local out, acks = {}, {ack = {}}
-- one `by` for every attempt (finish_attempt reads it and keeps nothing); the times stay the strings they came
-- as (a started time that is not an integer counts as none, as tonumber made it)
local by = {worker = worker, now = ARGV[1], ttl = ARGV[2]}
local i, n, last = 4, 0, #ARGV
while i <= last do
  local started = ARGV[i + 6]
  if not string.find(started, '^%d+$') then started = nil end
  by.started, by.task = started, ARGV[i + 7]
  local width = 10
  if ARGV[i + 8] == '\0' then  -- what its start gave (a comparison of interned strings: no C call)
    by.args, by.opts = nil, nil
    by.stream, by.entry, by.run, by.parent, by.dependents = ARGV[i + 9], ARGV[i + 10], ARGV[i + 11], ARGV[i + 12],
      ARGV[i + 13]
    width = 14
  else
    by.args, by.opts, by.stream = ARGV[i + 8], ARGV[i + 9], nil
  end
  n = n + 1
  out[n] = finish_attempt(now, ttl, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4]),
    ARGV[i + 5], acks, by, KEYS[n])  -- KEYS: each attempt's job key (store/calls.py)
  i = i + width
end
ack_all(acks)
lim_flush()
return out
