-- The end of one attempt (the single-job form of finish_many.lua), fenced by its token.
-- KEYS[1] job key. ARGV: now, job id, token, outcome, payload, retry due ms[, dead-letter queue name[, worker,
-- started ms, task]]. Returns the outcome applied, or "stale".
run_when_full()
local by = {worker = ARGV[8] or '', started = tonumber(ARGV[9] or ''), task = ARGV[10] or ''}
return finish_attempt(tonumber(ARGV[1]), 0, ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6] or '0'),
  ARGV[7] or '', nil, by)
