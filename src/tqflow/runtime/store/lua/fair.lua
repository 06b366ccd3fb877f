-- Fair share (issue 16): jobs with a fair key (options `fk`, weight `fw`, default 1) of one queue and level
-- are served in weighted round robin across keys instead of first come, first served. They wait in one
-- list per key and are fed onto their stream a few at a time (FAIR_WINDOW), in stride order: the key with
-- the lowest pass goes next and its pass grows by 1 / weight, so over any contested stretch key i gets
-- w_i / sum(w) of the starts. Keys (store/keys.py FairKeys mirrors them), in the namespace's slot:
--   :fair:Q:P        zset  key -> its pass (the virtual time of its next turn)
--   :fair:Q:P:k:KEY  list  job ids of that key, first come first served
--   :fair:Q:P:s      hash  fed (its entries on the stream not yet started), vt (the pass last served)
-- A fair job waiting in its list is `queued` with no entry and `fq` = 1; fed, it has its entry and `ff` = the
-- level it was fed at. The stream stays the only way to a worker, so starts, recovery, aging and priorities
-- work unchanged: fairness only chooses the order in which entries reach the stream.
local FAIR_WINDOW = 8
-- fair_refill, fair_touched (what one fetch refills): bound per call (common.lua)
local function fair_base(q, p) return prefix .. ':fair:' .. q .. ':' .. p end
-- A stream fed entries were taken from in this call (fetch.lua refills them once, at its end).
local function fair_touch(q, p)
  local touched = fair_touched
  if not touched then touched = {}; fair_touched = touched end
  touched[q .. '\0' .. p] = {q, p}
end

local function fair_key_of(opts)
  if not opts or opts == '' or not string.find(opts, '"fk"', 1, true) then return nil end
  local o = cjson.decode(opts)
  if o.fk == nil then return nil end
  return tostring(o.fk), tonumber(o.fw) or 1
end

-- Feed the stream of (q, p) from the keys' lists, in stride order, until `want` fair entries are on it.
-- Returns how many it moved.
local function fair_feed(q, p, now, want)
  local base = fair_base(q, p)
  local fed = tonumber(redis.call('HGET', base .. ':s', 'fed') or '0') or 0
  local moved = 0
  while fed < want do
    local first = redis.call('ZRANGE', base, 0, 0, 'WITHSCORES')
    if not first[1] then break end
    local key, pass = first[1], tonumber(first[2])
    local list = base .. ':k:' .. key
    local id = redis.call('LPOP', list)
    if id then
      local k = job_key(id)
      local state, fq, opts = unpack(redis.call('HMGET', k, 'state', 'fq', 'opts'))
      if state == 'queued' and fq == '1' then
        local _, weight = fair_key_of(opts)
        local eid = redis.call('XADD', stream_key(q, p), '*', 'j', id)
        redis.call('HSET', k, 'entry', eid, 'fq', '', 'ff', p)
        fed, moved = fed + 1, moved + 1
        redis.call('HSET', base .. ':s', 'vt', first[2])
        pass = pass + 1 / math.max(weight or 1, 0.000001)
      end
    end
    if redis.call('LLEN', list) == 0 then redis.call('ZREM', base, key)
    elseif id then redis.call('ZADD', base, pass, key) end
  end
  redis.call('HSET', base .. ':s', 'fed', fed)
  return moved
end

-- A job with a fair key became ready: it waits in its key's list (state queued, no stream entry yet).
-- A key that was idle joins at the pass last served: it gets no credit for the time nothing of it waited.
local function fair_add(k, id, q, p, now, key, extra)
  local base = fair_base(q, p)
  redis.call('RPUSH', base .. ':k:' .. key, id)
  if extra then redis.call('HSET', k, 'state', 'queued', 'enqueued', now, 'entry', '', 'fq', '1', unpack(extra))
  else redis.call('HSET', k, 'state', 'queued', 'enqueued', now, 'entry', '', 'fq', '1') end
  if not redis.call('ZSCORE', base, key) then
    redis.call('ZADD', base, redis.call('HGET', base .. ':s', 'vt') or 0, key)
  end
  fair_feed(q, p, now, FAIR_WINDOW)
end

-- A fed entry left the stream (started, cancelled, moved): one fewer on the window; refill it.
local function fair_taken(q, ff, now)
  local s = fair_base(q, ff) .. ':s'
  if redis.call('HINCRBY', s, 'fed', -1) < 0 then redis.call('HSET', s, 'fed', 0) end
  if fair_refill then fair_feed(q, ff, now, FAIR_WINDOW) else fair_touch(q, ff) end
end

-- A fair job not fed yet leaves its key's list (cancelled, reprioritized).
local function fair_remove(q, p, id, opts)
  local key = fair_key_of(opts)
  if key then redis.call('LREM', fair_base(q, p) .. ':k:' .. key, 1, id) end
end

-- A job is ready: onto its stream, or (a fair key) into its key's list. `opts`: its options JSON.
local function make_ready(k, id, q, p, now, opts, extra)
  if opts and string.find(opts, '"fkx"', 1, true) and (redis.call('HGET', k, 'fan_out') or '') ~= '' then
    return push_to(k, id, q, p, now, extra)  -- a fan-out parent: its items are served fairly, it is not
  end
  if opts and string.find(opts, '"fkx"', 1, true) then  -- a flow job's fair key that reads an output
    local o = cjson.decode(opts)
    local key, weight = flow_fair(o, redis.call('HGET', k, 'run'))
    o.fkx, o.fwx = nil, nil
    if key then o.fk, o.fw = key, weight
    else redis.call('HSET', k, 'fair_error', string.sub(weight, 1, 300)) end  -- served first come first served
    opts = cjson.encode(o)
    redis.call('HSET', k, 'opts', opts)
  end
  local key = fair_key_of(opts)
  if key then fair_add(k, id, q, p, now, key, extra) else push_to(k, id, q, p, now, extra) end
end
