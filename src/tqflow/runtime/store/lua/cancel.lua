-- Cancel jobs (see cancel_job). ARGV: prefix, now, reason, then job ids. Returns one status a job.
run_when_full()
local now, reason = tonumber(ARGV[2]), ARGV[3]
local out = {}
for i = 4, #ARGV do out[#out + 1] = cancel_job(ARGV[i], now, reason) end
return out
