-- The ends of attempts, each fenced by its token: succeeded, retry, dead, skipped or cancelled.
-- ARGV: now, ttl ms of finished standalone records, worker name, then one attempt after another, in one of
-- two forms (store/calls.py finish_many picks it), told apart by the first field's first byte:
-- - the short form of a lean job's first-attempt success (its first field, the token, starts with '@'),
--   5 fields: token, job id, result, options as the fetch gave them ('' for none), and the end record's
--   packed field `ran` (store/records.py: started, finished, worker, task, options, arguments), which its
--   success writes whole, so its worker sends nothing else;
-- - any other end, 10 fields: outcome, job id, token, payload (result, error JSON or reason), retry due ms,
--   dead-letter queue name, started ms, task, arguments, options (the last four, and the worker, are what a
--   lean job's first attempt, which has no record, writes at its end: the arguments and options the entry
--   held, '' when not sent).
-- KEYS: each attempt's job key, in the same order.
-- Returns the attempts whose status is not the outcome asked, as pairs: the attempt's place (1, 2, …), its
-- status (the outcome applied, "stale" when the attempt is not the job's own); so most calls answer an
-- empty list, not a status a job (store/calls.py read_reply makes it one status an attempt).
run_when_full()
lim_batch = true  -- the slots its attempts give back are written once (limits.lua)
local now, ttl, worker = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local out, acks = {}, {ack = {}}
-- one `by` for every attempt (finish_attempt reads it and keeps nothing); the times stay the strings they came
-- as (a started time that is not an integer counts as none, as tonumber made it)
local by = {worker = worker, now = ARGV[1], ttl = ARGV[2]}
local i, j, n = 4, 1, #ARGV
while i <= n do
  local first = ARGV[i]
  if string.byte(first, 1) == 64 then  -- '@': the short form
    by.started, by.task, by.args, by.opts, by.ran = nil, '', nil, ARGV[i + 3], ARGV[i + 4]
    local status = finish_attempt(now, ttl, ARGV[i + 1], first, 'succeeded', ARGV[i + 2], 0, '', acks, by, KEYS[j])
    if status ~= 'succeeded' then out[#out + 1] = j; out[#out + 1] = status end
    i = i + 5
  else
    local started = ARGV[i + 6]
    if not string.find(started, '^%d+$') then started = nil end
    by.started, by.task, by.args, by.opts, by.ran = started, ARGV[i + 7], ARGV[i + 8], ARGV[i + 9], nil
    local status = finish_attempt(now, ttl, ARGV[i + 1], ARGV[i + 2], first, ARGV[i + 3], tonumber(ARGV[i + 4]),
      ARGV[i + 5], acks, by, KEYS[j])
    if status ~= first then out[#out + 1] = j; out[#out + 1] = status end
    i = i + 10
  end
  j = j + 1
end
ack_all(acks)
lim_flush()
return out
