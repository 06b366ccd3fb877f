-- A fan-out job's attempt creates one child job per item, all at once, fenced by its token; the job
-- then waits (state "fanout") until every child has ended (see child_done).
-- KEYS[1] the parent's record[, KEYS[2] a staging list holding the payloads]. ARGV: now, parent id, token, count, payloads…
-- then, when the items' options differ (limit or fair keys that read the item: runtime/flow_controls.py),
-- "\0opts" and one options JSON an item (staged: ARGV[5] "\0opts", the list holding the payloads then those).
-- Returns "fanout", "succeeded" (no items) or "stale".
refuse_when_full()
local now, parent, token, n = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local pk = job_key(parent)
local state, current, stream, entry = unpack(redis.call('HMGET', pk, 'state', 'token', 'stream', 'entry'))
local items, base = ARGV, 4
local own = ARGV[5 + n] == '\0opts' or (#KEYS > 1 and ARGV[5] == '\0opts')  -- one options JSON an item
if #KEYS > 1 then
  items, base = {}, 0
  local total = n
  if own then total = 2 * n end
  for start = 0, total - 1, 1000 do
    for _, v in ipairs(redis.call('LRANGE', KEYS[2], start, start + 999)) do items[#items + 1] = v end
  end
  redis.call('DEL', KEYS[2])
end
if state ~= 'running' or current ~= token then return 'stale' end
release_held(pk, parent, now, redis.call('HGET', pk, 'lh'))  -- its items take their own slots
redis.call('XACK', stream, GROUP, entry)
redis.call('XDEL', stream, entry)
if n == 0 then
  redis.call('HSET', pk, 'state', 'succeeded', 'result', 'J-|[]', 'finished', now, 'token', '')
  on_terminal(parent, now)
  return 'succeeded'
end
local task, q, p, opts, run_id, name, flow = unpack(redis.call('HMGET', pk, 'task', 'queue', 'prio', 'opts', 'run',
  'name', 'flow'))
if not name and run_id then name = string.sub(parent, #run_id + 2) end  -- (no name held: the id is RUN.NAME)
redis.call('HSET', pk, 'state', 'fanout', 'children', n, 'children_left', n, 'token', '')
for i = 0, n - 1 do
  local id = parent .. '.' .. i
  local k = job_key(id)
  redis.call('HSET', k, 'task', task, 'payload', items[base + i + 1], 'queue', q, 'prio', p, 'parent', parent,
    'name', name .. '[' .. i .. ']', 'opts', opts or '', 'of_run', run_id or '', 'flow', flow or '')
  -- `of_run`, not `run`: a child runs as a plain job (no run context); `of_run` names its run for readers
  local child_opts = opts
  if own then
    child_opts = items[base + n + i + 1 + ((#KEYS > 1) and 0 or 1)]
    redis.call('HSET', k, 'opts', child_opts)
  end
  make_ready(k, id, q, p, now, child_opts)
end
return 'fanout'
