-- The end of one attempt (the single-job form of finish_many.lua), fenced by its token.
-- KEYS[1] job key. ARGV: prefix, now, job id, token, outcome, payload, retry due ms[, dead-letter queue name].
-- Returns the outcome applied, or "stale".
run_when_full()
return finish_attempt(tonumber(ARGV[2]), 0, ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7] or '0'), ARGV[8] or '')
