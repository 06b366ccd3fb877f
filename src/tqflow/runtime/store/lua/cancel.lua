-- Cancel jobs (see cancel_job). ARGV: now, reason, then job ids. Returns one status a job.
run_when_full()
local now, reason = tonumber(ARGV[1]), ARGV[2]
local out = {}
for i = 3, #ARGV do out[#out + 1] = cancel_job(ARGV[i], now, reason) end
return out
