-- Prepended to submit_run.lua for an event whose trigger has a `key`: the first event with a key within
-- the window starts the run; a later one within it starts nothing and gets that run's id. The fence's own
-- KEYS and ARGV are the LAST ones, after submit_run's.
-- KEYS[…] the key's marker ({ns}:evkey:FLOW:TRIGGER:DIGEST). ARGV[…] the window (ms).
-- Returns "duplicate:RUN_ID" when the key was seen within the window.
do
  local marker, window = KEYS[#KEYS], ARGV[#ARGV]
  local held = redis.call('GET', marker)
  if held then return 'duplicate:' .. held end
  redis.call('SET', marker, ARGV[2], 'PX', window)
end
