-- Read up to a number of entries from each stream in the given order (the worker's weighted plan),
-- then fill what is left from the streams in order, and start every job read (see start_entry).
-- A stream with a fair share (fair.lua) that runs dry is fed from its keys' lists and read again; entries
-- that do not start (a limiter parks them, or stale ones) are read past, a few rounds at most.
-- KEYS: the streams, in that order. ARGV: now, worker, token prefix, lease ms, wanted, then one count a stream.
-- Returns the started attempts: a start row (a table, see start_entry) or, for the common lean entry, its 4
-- fields inline, entry id, task, payload, options or false, after a number n that says which stream (KEYS[n])
-- the lean jobs that follow it were read from (store/calls.py fetched_rows makes them start rows): the queue,
-- level, job id, token and times are the stream's and the entry id's, and 4 fields a job instead of 11, in
-- the reply itself rather than a table of their own (a table a job costs Redis ~4k instructions to make and
-- to turn into a reply, callgrind), cost Redis less to make and send.
refuse_when_full()
lim_batch = true  -- its starts' limits are read and written once (limits.lua)
local now, worker, token, lease, wanted = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local started, got, n = {}, 0, 0
local lease_until = now + lease  -- of every attempt this call starts
fair_refill = false
-- Jobs started from one stream, up to `count`. Entries that did not start (parked by a limiter, stale)
-- make it read again, a few rounds at most, so a backlog of jobs over their limit is parked many a call
-- instead of one call (and one blocking read) per entry.
local ROUNDS = 8
local NONE = {}  -- a read that found nothing (read only)
-- `count_text`: `count` as its ARGV text, when it is one (a number passed to redis.call is formatted with
-- sprintf, ~2k instructions).
local function read(stream, count, index, count_text)
  local total = 0
  -- the stream's queue, level, lean id head (which names its lean entries' jobs, as lean_id_at) and fair key
  local place = stream_place(stream)
  local lean = place and place[3]
  local marked = false  -- its index precedes its first lean row of this read
  for round = 1, ROUNDS do
    local want = count - total
    if want <= 0 then break end
    local reply = redis.call('XREADGROUP', 'GROUP', GROUP, worker, 'COUNT', total == 0 and count_text or want,
      'STREAMS', stream, '>')
    local entries = reply and reply[1][2] or NONE
    for j = 1, #entries do  -- (not ipairs: its iterator is a C call an entry)
      local e = entries[j]
      local eid, f = e[1], e[2]
      n = n + 1
      -- The common entry, as enqueue.lua writes a lean job (t, p[, o][, l]), read here for the first time:
      -- its first attempt, nothing written, the lean row of what start_entry's lean case returns, made
      -- without its parsing, tables and pcall (nothing on this path can raise). Anything else (a `j` entry,
      -- another shape) goes through start_guarded as before.
      local k5, row = f[5], nil  -- row: the lean job's options (false: none) when it starts inline
      local opts, lims, shape = false, nil, false
      if lean and f[1] == 't' and f[3] == 'p' then
        if k5 == nil then row = false  -- the plainest (and commonest) first
        elseif k5 == 'o' then
          opts = f[6]
          if f[7] == nil then shape = true elseif f[7] == 'l' and f[9] == nil then shape, lims = true, f[8] end
        elseif k5 == 'l' and f[7] == nil then shape, lims = true, f[6] end
      end
      if lims then
        -- A limited one (its `l`, read once a call: lim_group) takes its slots and tokens here while every
        -- limit has room and nobody waits (one limit: its state's counts, in place; more: admit_batched),
        -- as start_entry's lean case would; otherwise start_entry parks it or honours what is there. Its
        -- row's options carry its `l` after a newline when it holds slots: its worker sends them back at
        -- its end, which gives the slots back (lean_end).
        local g = lim_groups and lim_groups[lims]
        if g == nil then g = lim_group(lims) end
        local ok = false
        if g and g.m then
          local st = g.st
          if not st or st.gone then
            st = lim_take_state(g.m, g.l, now)
            if g.c and (not st.ends or lease_until < st.ends) then st.ends = lease_until end
            g.st = st
          end
          if st.waiting == 0 then
            if g.c then
              if st.free >= 1 then
                st.free = st.free - 1
                local add = st.add
                add[#add + 1] = lean .. eid
                ok = true
              end
            elseif st.n >= 1 then
              st.n = st.n - 1
              st.dirty = true
              ok = true
            end
          end
        elseif g then
          ok = admit_batched(lean .. eid, g.specs, now, lease_until) ~= nil
        end
        if ok then
          local back = opts
          if g.held then
            back = g.backs[opts or '']
            if not back then
              back = (opts or '') .. '\n' .. lims
              g.backs[opts or ''] = back
            end
          end
          row = back
        end
      elseif shape then
        -- An entry written before `l` holds its limits in `o`: a limited one of that shape whose options
        -- this call decoded already (lim_specs: the first of a batch's jobs goes through start_guarded, which
        -- decodes them under its pcall) takes its slots and tokens here as above, with its options
        -- (admit_batched); otherwise start_entry parks it or honours what is there.
        local limited = opts and string.find(opts, '"lim"', 1, true)
        local specs = limited and lim_specs and lim_specs[opts]
        if not limited or (specs ~= nil and (not specs or #specs == 0
          or admit_batched(lean .. eid, specs, now, lease_until))) then
          row = opts
        end
      end
      if row ~= nil then
        local at = #started
        if not marked then at = at + 1; started[at] = index; marked = true end
        started[at + 1], started[at + 2], started[at + 3], started[at + 4] = eid, f[2], f[4], row
        total = total + 1
      else
        local job = start_guarded(entry_job(stream, eid, f), stream, eid, worker, token .. n, now, lease, f)
        if job then started[#started + 1] = job; total = total + 1 end
      end
    end
    if #entries < want then  -- the stream ran dry: a fair share feeds it from its keys' lists
      if round == ROUNDS or not place or redis.call('EXISTS', place[4]) == 0 then break end
      local q, p = place[1], place[2]
      redis.call('HSET', place[4] .. ':s', 'fed', 0)  -- nothing of it is left unread on the stream
      fair_touch(q, p)
      if fair_feed(q, p, now, count - total) == 0 then break end
    end
  end
  return total
end
local empty = {}
for i = 1, #KEYS do
  local text = ARGV[i + 5]
  local count = text == '0' and 0 or tonumber(text)  -- (a comparison of interned strings: no C call)
  local left = wanted - got
  if count > 0 and left > 0 then  -- (a count of 0 reads nothing)
    local read_n = count <= left and read(KEYS[i], count, i, text) or read(KEYS[i], left, i)
    got = got + read_n
    if read_n < count then empty[KEYS[i]] = true end
  end
end
for i = 1, #KEYS do
  if got >= wanted then break end
  if not empty[KEYS[i]] then
    local read_n = read(KEYS[i], wanted - got, i, got == 0 and ARGV[5] or nil)
    got = got + read_n
  end
end
if fair_touched then  -- for blocked readers
  for _, qp in pairs(fair_touched) do fair_feed(qp[1], qp[2], now, FAIR_WINDOW) end
end
lim_flush()
return started
