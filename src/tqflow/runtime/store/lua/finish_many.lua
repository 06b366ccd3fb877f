-- The ends of attempts, each fenced by its token: succeeded, retry, dead, skipped or cancelled.
-- ARGV: now, ttl ms of finished standalone records, then 6 fields an attempt:
--   job id, token, outcome, payload (result, error JSON or reason), retry due ms, dead-letter queue name.
-- Returns one status an attempt: the outcome applied, or "stale" when the attempt is not the job's own.
run_when_full()
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local out, acks = {}, {}
for i = 3, #ARGV, 6 do
  out[#out + 1] = finish_attempt(now, ttl, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4]),
    ARGV[i + 5], acks)
end
ack_all(acks)
return out
