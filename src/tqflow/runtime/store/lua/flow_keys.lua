-- The limit and fair keys of a flow job that read an upstream output (runtime/flow_controls.py leaves them
-- as expression trees, `limx` / `fkx` / `fwx` in the job's options, with everything else folded into
-- literals): evaluated here when the job becomes ready (fair) or starts (limits). The forms: lit, out (a
-- plain JSON result), attr, index, fstr and `+`; anything else is an error that says so.
local function key_text(v)
  if type(v) == 'number' and v == math.floor(v) and math.abs(v) < 1e15 then return string.format('%d', v) end
  if type(v) == 'boolean' then return v and 'true' or 'false' end
  if type(v) ~= 'string' and type(v) ~= 'number' then
    error('a limit or fair key must be a string or a number, got a ' .. type(v))
  end
  local text = tostring(v)
  -- runtime/limits.py key_text: a tab or a newline would split the lines of a job's held slots (`lh`)
  if string.find(text, '[%z\1-\31\127]') then
    error('a limit or fair key has a control character (tab, newline, ...): ' .. cjson.encode(text))
  end
  return text
end

local function flow_value(tree, run_id)
  if tree.lit ~= nil then return tree.lit end
  if tree.op then
    if tree.op ~= '+' then error('`' .. tree.op .. '` cannot make a limit or fair key') end
    local a, b = flow_value(tree.args[1], run_id), flow_value(tree.args[2], run_id)
    if type(a) == 'number' and type(b) == 'number' then return a + b end
    if type(a) == 'string' and type(b) == 'string' then return a .. b end
    error('cannot apply `+` to a ' .. type(a) .. ' and a ' .. type(b))
  end
  if tree.out then
    local r = redis.call('HGET', job_key(run_id .. '.' .. tree.out), 'result')
    local body = r and string.match(r, '^J%-%d*|(.*)$')
    if not body then error('the output of `' .. tree.out .. '` is not plain JSON (compressed or another codec)') end
    return cjson.decode(body)
  end
  if tree.attr then
    local v = flow_value(tree.attr[1], run_id)
    if type(v) ~= 'table' or v[tree.attr[2]] == nil then error('no field `' .. tree.attr[2] .. '`') end
    return v[tree.attr[2]]
  end
  if tree.index then
    local v, i = flow_value(tree.index[1], run_id), flow_value(tree.index[2], run_id)
    if type(v) ~= 'table' then error('cannot index a ' .. type(v)) end
    local got
    if type(i) == 'number' then got = v[i + 1] else got = v[i] end
    if got == nil then error('no item ' .. tostring(i)) end
    return got
  end
  if tree.fstr then
    local parts = {}
    for _, p in ipairs(tree.fstr) do
      if type(p) == 'string' then parts[#parts + 1] = p else parts[#parts + 1] = key_text(flow_value(p, run_id)) end
    end
    return table.concat(parts)
  end
  error('this expression cannot make a limit or fair key')
end

-- The job's limits with their late keys filled in (`limx`: {index in lim (0-based), tree}); raises on a
-- key that cannot be evaluated (start_guarded dead-letters the job with the reason).
local function flow_limits(o, run_id)
  for _, late in ipairs(o.limx or {}) do
    local key = key_text(flow_value(late[2], run_id))
    if #key > 200 then error('a limit key is ' .. #key .. ' characters long; the limit is 200') end
    o.lim[late[1] + 1].k = key
  end
  o.limx = nil
  return o
end

-- The job's fair key and weight when they read an upstream output; nil, why when they cannot be evaluated.
local function flow_fair(o, run_id)
  local ok, key = pcall(function() return key_text(flow_value(o.fkx, run_id)) end)
  if not ok then return nil, tostring(key) end
  local weight = 1
  if o.fwx then
    local good, w = pcall(flow_value, o.fwx, run_id)
    if not good or type(w) ~= 'number' or w <= 0 then return nil, 'the fair weight is not a positive number' end
    weight = w
  end
  return key, weight
end
