-- The end of one attempt (the single-job form of finish_many.lua), fenced by its token.
-- KEYS[1] job key. ARGV: now, job id, token, outcome, payload, retry due ms[, dead-letter queue name].
-- Returns the outcome applied, or "stale".
run_when_full()
return finish_attempt(tonumber(ARGV[1]), 0, ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6] or '0'), ARGV[7] or '')
