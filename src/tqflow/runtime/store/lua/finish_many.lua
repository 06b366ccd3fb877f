-- The ends of attempts, each fenced by its token: succeeded, retry, dead, skipped or cancelled.
-- ARGV: now, ttl ms of finished standalone records, worker name, then one attempt after another, in one of
-- three forms (store/calls.py finish_many picks it), told apart by the first field's first byte:
-- - a lean job's first-attempt success (its token starts with '@'), its job known by its key alone (KEYS),
--   2 fields: token, and its end record's packed field `ran` (store/endrow.py: started, finished, worker,
--   task, options, arguments, result), which its success writes whole, so its worker sends nothing else;
-- - the same with options (a no-result job's, a limited job's), 4 fields: '+', token, the options as the
--   fetch gave them, `ran`;
-- - any other end, 10 fields: outcome, job id, token, payload (result, error JSON or reason), retry due ms,
--   dead-letter queue name, started ms, task, arguments, options (the last four, and the worker, are what a
--   lean job's first attempt, which has no record, writes at its end: the arguments and options the entry
--   held, '' when not sent); or, for an attempt started from a record whose start gave them (start_entry's
--   run context), 14 fields: the first 8, "\0", then its stream, entry, run, parent and dependents, which its
--   end then does not read.
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
-- When none of the call's jobs has a record (one EXISTS of every key: the common batch of lean successes),
-- a short form's job has none when its turn comes unless an earlier end of this call named the same key
-- (`named`), and its end skips the EXISTS a job that finish_attempt asks.
local none = #KEYS <= 1000 and #KEYS > 0 and redis.call('EXISTS', unpack(KEYS)) == 0
local named = {}
local i, j, n = 4, 1, #ARGV
while i <= n do
  local first, k = ARGV[i], KEYS[j]
  local fresh = none and not named[k]
  if none then named[k] = true end
  local b = string.byte(first, 1)
  if b == 64 then  -- '@': a lean success
    by.started, by.task, by.args, by.opts, by.ran, by.stream = nil, '', nil, nil, ARGV[i + 1], nil
    local status = finish_short(now, ttl, k, first, acks, by, fresh)
    if status ~= 'succeeded' then out[#out + 1] = j; out[#out + 1] = status end
    i = i + 2
  elseif b == 43 and #first == 1 then  -- '+': a lean success with options
    by.started, by.task, by.args, by.opts, by.ran, by.stream = nil, '', nil, ARGV[i + 2], ARGV[i + 3], nil
    local status = finish_short(now, ttl, k, ARGV[i + 1], acks, by, fresh)
    if status ~= 'succeeded' then out[#out + 1] = j; out[#out + 1] = status end
    i = i + 4
  else
    local started = ARGV[i + 6]
    if not string.find(started, '^%d+$') then started = nil end
    by.started, by.task, by.ran = started, ARGV[i + 7], nil
    local width = 10
    if ARGV[i + 8] == '\0' then  -- what its start gave (a comparison of interned strings: no C call)
      by.args, by.opts = nil, nil
      by.stream, by.entry, by.run, by.parent, by.dependents = ARGV[i + 9], ARGV[i + 10], ARGV[i + 11],
        ARGV[i + 12], ARGV[i + 13]
      width = 14
    else
      by.args, by.opts, by.stream = ARGV[i + 8], ARGV[i + 9], nil
    end
    local status = finish_attempt(now, ttl, ARGV[i + 1], ARGV[i + 2], first, ARGV[i + 3], tonumber(ARGV[i + 4]),
      ARGV[i + 5], acks, by, k)
    if status ~= first then out[#out + 1] = j; out[#out + 1] = status end
    i = i + width
  end
  j = j + 1
end
ack_all(acks)
lim_flush()
return out
