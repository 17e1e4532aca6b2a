-- Storage and dispatch around algorithms.lua: one call = one atomic command over one slot.
--
-- KEYS[1] is the reservation record; KEYS[1 + s] is store s: 1 = the slot's hash of windowed
-- states (its TTL follows the latest expiry written), 2 = the slot's persistent hash (balances).
-- Stores 3 and 4 are the global slot's, passed when it shares the server (not on Cluster),
-- then a pair per group slot the call spans (org, team...). After every slot's pair come the
-- slots' usage-history hashes, one per slot, in order. Every command addresses stores by these
-- numbers only, so a call over any number of slots runs the same code.
-- ARGV[1] names the command; the layouts are written by quota/backends/redis/codec.py.

-- K and A are the keys and arguments of the command being run: KEYS and ARGV, or one call's
-- share of them inside a batch.
local K, A = KEYS, ARGV
bind_states()
local SPANNED = 61 -- "=": a one-server record's linked, naming the group slots it spanned

local function split(s, sep)
  local out, from = {}, 1
  while true do
    local i = string.find(s, sep, from, true)
    if not i then
      out[#out + 1] = string.sub(s, from)
      return out
    end
    out[#out + 1] = string.sub(s, from, i - 1)
    from = i + 1
  end
end

local function numbers(s)
  local out = {}
  for _, x in ipairs(split(s, ":")) do out[#out + 1] = tonumber(x) end
  return out
end

-- ops as tables (commands other than the acquire): the flat layout of core.lua from A[at]
local function read_ops(at)
  local ops = {}
  for i = 0, tonumber(A[at]) - 1 do
    local j = at + 1 + i * OP
    local given = {}
    for m = 3, 5 do
      if A[j + m] ~= "" then given[#given + 1] = A[j + m] end
    end
    ops[#ops + 1] = {
      store = A[j], field = A[j + 1], code = A[j + 2], pstr = table.concat(given, ":"),
      params = {tonumber(A[j + 3]), tonumber(A[j + 4]), tonumber(A[j + 5])},
      cost = tonumber(A[j + 6]), meter = A[j + 7],
    }
  end
  return ops
end

local function key_of(op)
  return K[tonumber(op.store) + 1]
end

local function load(op)
  return decode(op.code, redis.call("HGET", key_of(op), op.field))
end

-- Writes are staged per key and sent as one HSET and one HDEL per key (fewer redis.call).
local function staged()
  return {ttls = {}, sets = {}, dels = {}, order = {}}
end

local function stage(w, key, field, value)
  if not w.sets[key] then
    w.sets[key], w.dels[key] = {}, {}
    w.order[#w.order + 1] = key
  end
  if value then
    local s = w.sets[key]
    s[#s + 1] = field
    s[#s + 1] = value
  else
    local d = w.dels[key]
    d[#d + 1] = field
  end
end

-- Write a state as the memory engine stores it: nothing for an empty or expired state.
local function write(now, w, op, state)
  local key, algo = key_of(op), ALGORITHMS[op.code]
  if #state == 0 then
    stage(w, key, op.field, nil)
    return
  end
  if not algo.expiry then
    stage(w, key, op.field, encode(op.code, state))
    return
  end
  local ttl = algo.expiry(state, op.params) - now
  if ttl <= 0 then
    stage(w, key, op.field, nil)
    return
  end
  stage(w, key, op.field, encode(op.code, state))
  if (w.ttls[key] or 0) < ttl then w.ttls[key] = ttl end
end

local function flush(w)
  for _, key in ipairs(w.order) do
    if #w.sets[key] > 0 then redis.call("HSET", key, unpack(w.sets[key])) end
    if #w.dels[key] > 0 then redis.call("HDEL", key, unpack(w.dels[key])) end
  end
  for key, ttl in pairs(w.ttls) do
    if redis.call("PTTL", key) < ttl then redis.call("PEXPIRE", key, ttl) end
  end
end

-- The stored strings of ops' fields ("" when absent), one HMGET per key.
local function read_all(ops)
  local groups, order, raws = {}, {}, {}
  for i, op in ipairs(ops) do
    local key = key_of(op)
    local g = groups[key]
    if not g then
      g = {fields = {}, at = {}}
      groups[key] = g
      order[#order + 1] = key
    end
    g.fields[#g.fields + 1] = op.field
    g.at[#g.at + 1] = i
  end
  for _, key in ipairs(order) do
    local g = groups[key]
    local values = redis.call("HMGET", key, unpack(g.fields))
    for j, i in ipairs(g.at) do raws[i] = values[j] or "" end
  end
  return raws
end

local function push(reply, field, out)
  reply[#reply + 1] = field
  reply[#reply + 1] = out[1] and 1 or 0
  reply[#reply + 1] = out[2]
  reply[#reply + 1] = out[3]
  reply[#reply + 1] = out[4]
  reply[#reply + 1] = out[5]
end

-- Record: "expires,open,linked;charge;charge...[#image!image...]", a charge being
-- "store,field,code,params,anchor,amount,meter,remaining,reset,retry" and an image
-- "store|field|before|after" (kept only when a later slot may have to undo this one).
-- linked: "" alone; on Cluster the later calls' slots ("."-joined; "1" of old: the global
-- slot); on one server "=" and the group slots the call spanned (a settle needs their keys).
-- quota/backends/redis/codec.py reads and writes the same format (Record: secret rotation).
local function parse_record(rec)
  local sections = split(rec, "#")
  local parts = split(sections[1], ";")
  local head = split(parts[1], ",")
  local r = {expires = tonumber(head[1]), open = head[2] == "1", linked = head[3], charges = {}}
  for i = 2, #parts do
    local c = split(parts[i], ",")
    r.charges[#r.charges + 1] = {
      store = c[1], field = c[2], code = c[3], params = numbers(c[4]), anchor = tonumber(c[5]),
      cost = tonumber(c[6]), meter = c[7], remaining = tonumber(c[8]), reset = tonumber(c[9]),
      retry = tonumber(c[10]),
    }
  end
  r.images = {}
  if sections[2] then
    for _, image in ipairs(split(sections[2], "!")) do r.images[#r.images + 1] = split(image, "|") end
  end
  return r
end

-- The verdict recorded under K[1] (allowed, replayed, then a sextuple per charge), or nil.
local function recorded(now)
  local rec = redis.call("GET", K[1])
  if not rec then return nil end
  local r = parse_record(rec)
  if r.expires <= now then return nil end
  local reply = {1, 1}
  for _, c in ipairs(r.charges) do
    push(reply, c.field, {true, c.remaining, c.reset, c.retry, c.anchor})
  end
  return reply
end

local function cmd_acquire()
  local now, ttl, linked = tonumber(A[2]), tonumber(A[3]), A[4]
  local replay = ttl > 0 and recorded(now)
  if replay then return replay end
  local reply, raws, outs = acquire_flat(K, A, 5, now, OP)
  if reply[1] == 0 or ttl == 0 then return reply end
  local ops = read_ops(5)
  local parts = {fmt(now + ttl) .. ",1," .. linked}
  for i, op in ipairs(ops) do
    local o = outs[i]
    parts[#parts + 1] = table.concat({op.store, op.field, op.code, op.pstr, fmt(o[5]),
      fmt(op.cost), op.meter, fmt(o[2]), fmt(o[3]), fmt(o[4])}, ",")
  end
  local record = table.concat(parts, ";")
  if linked ~= "" and string.byte(linked) ~= SPANNED then
    local images = {}
    for i, op in ipairs(ops) do
      local after = as_text(redis.call("HGET", key_of(op), op.field) or "")
      images[i] = table.concat({op.store, op.field, as_text(raws[i] or ""), after}, "|")
    end
    record = record .. "#" .. table.concat(images, "!")
  end
  redis.call("SET", K[1], record, "PX", ttl)
  return reply
end

-- A later slot's part of a replayed decision (Cluster): its record's charges, or none.
local function cmd_replay()
  return recorded(tonumber(A[2])) or {1, 1}
end

-- An acquire without a request id: what the library's function does, for servers without it.
local function cmd_fast()
  return (acquire_flat(K, A, 3, tonumber(A[2]), OP - 1))
end

local function settle_charges(now, r, actual)
  local w, raws = staged(), read_all(r.charges)
  for i, c in ipairs(r.charges) do
    local amount = 0
    if actual then amount = actual[c.meter] or c.cost end
    local state = decode(c.code, raws[i])
    write(now, w, c, ALGORITHMS[c.code].settle(state, now, c.params, c.anchor, c.cost, amount))
  end
  flush(w)
end

-- "release", or "settle" followed by meter, amount pairs from ARGV[at] on
local function actual_from(mode, at)
  if mode ~= "settle" then return nil end
  local actual = {}
  for i = at, #A, 2 do actual[A[i]] = tonumber(A[i + 1]) end
  return actual
end

-- A[3]: the group slots the caller passed keys for ("" or "=" and the slots); a record
-- whose call spanned others answers 2 and them, changing nothing: the caller asks again.
local function cmd_settle()
  local now = tonumber(A[2])
  local rec = redis.call("GET", K[1])
  if not rec then return {0, ""} end
  local r = parse_record(rec)
  if r.expires <= now or not r.open then return {0, ""} end
  local spanned = string.byte(r.linked) == SPANNED and r.linked or ""
  if spanned ~= A[3] then return {2, spanned} end
  settle_charges(now, r, actual_from(A[4], 5))
  local closed = string.gsub(rec, "^([^,]*),1,", "%1,0,", 1)
  redis.call("SET", K[1], closed, "KEEPTTL")
  return {1, r.linked}
end

-- Settle charges the caller kept (no record): store, field, code, params, anchor, amount,
-- meter for each of ARGV[4] charges, then the actual amounts.
local function cmd_direct()
  local now, n = tonumber(A[2]), tonumber(A[4])
  local r = {charges = {}}
  for i = 0, n - 1 do
    local j = 5 + i * 7
    r.charges[#r.charges + 1] = {
      store = A[j], field = A[j + 1], code = A[j + 2], params = numbers(A[j + 3]),
      anchor = tonumber(A[j + 4]), cost = tonumber(A[j + 5]), meter = A[j + 6],
    }
  end
  settle_charges(now, r, actual_from(A[3], 5 + n * 7))
  return 1
end

-- Outcomes for the ops' costs, charging nothing; with ``redo``, an admitted op is reported at
-- cost 0 (how a denied decision reports its other limits).
local function peek_ops(now, ops, redo)
  local reply = {}
  for _, op in ipairs(ops) do
    local state = load(op)
    local _, out = ALGORITHMS[op.code].acquire(state, now, op.params, op.cost)
    if redo and out[1] then _, out = ALGORITHMS[op.code].acquire(state, now, op.params, 0) end
    push(reply, op.field, out)
  end
  return reply
end

-- Undo an acquire whose decision a later slot denied: put back each state exactly as it was
-- when nothing touched it since, else release the charge; forget the record; report the ops
-- as they stand (cost 0), as the memory engine reports a denied decision's other limits.
local function cmd_undo()
  local now = tonumber(A[2])
  local rec = redis.call("GET", K[1])
  if rec then
    local r = parse_record(rec)
    if r.open and r.expires > now then
      local restored = true
      for _, image in ipairs(r.images) do
        local key = K[tonumber(image[1]) + 1]
        if as_text(redis.call("HGET", key, image[2]) or "") ~= image[4] then restored = false end
      end
      if restored then
        for _, image in ipairs(r.images) do
          local key = K[tonumber(image[1]) + 1]
          if image[3] == "" then
            redis.call("HDEL", key, image[2])
          else
            redis.call("HSET", key, image[2], image[3])
          end
        end
      else
        settle_charges(now, r, nil)
      end
    end
    redis.call("DEL", K[1])
  end
  return peek_ops(now, read_ops(3), true)
end

local function cmd_peek()
  return peek_ops(tonumber(A[2]), read_ops(4), A[3] == "1")
end

local function cmd_reset()
  for i = 2, #A, 2 do redis.call("HDEL", K[tonumber(A[i]) + 1], A[i + 1]) end
  return 1
end

local function cmd_top_up()
  local amount = tonumber(A[3])
  local op = read_ops(4)[1]
  local state = bl_top_up(load(op), op.params, amount)
  redis.call("HSET", key_of(op), op.field, encode(op.code, state))
  redis.call("HDEL", key_of(op), op.field .. "!r") -- "below" alerts re-arm
  return state[1]
end

local COMMANDS = {
  acquire = cmd_acquire, fast = cmd_fast, replay = cmd_replay, settle = cmd_settle,
  direct = cmd_direct, undo = cmd_undo, peek = cmd_peek,
  reset = cmd_reset, top_up = cmd_top_up,
}

-- Threshold alerts: quota/algorithms/thresholds.py, transcribed (read it for the why).
-- How many of a watch's thresholds x has reached (a leading run).
local function alert_level(w, x)
  local n = 0
  for i = 1, #w.ts do
    local t = w.ts[i]
    if (w.kind == "u" and x >= t) or (w.kind ~= "u" and x <= t) then n = i else return n end
  end
  return n
end

-- One watch after an admitted decision: its marker raised; returns the level emitted before
-- and the new level, or nil when nothing is newly reached. o: the op's outcome.
local function alert_cross(now, w, key, name, o)
  local x = o[2]
  if w.kind == "u" then x = w.cap - o[2] elseif w.kind == "t" then x = o[3] end
  local reached = alert_level(w, x)
  if reached == 0 then return nil end
  local window, prior = o[5], 0
  if w.span > 0 then window = now end
  local raw = redis.call("HGET", key, name)
  if raw then
    local marker = numbers(raw)
    local live = marker[1] == o[5]
    if w.span > 0 then live = now < marker[1] + w.span end
    if live then window, prior = marker[1], marker[2] end
  end
  if reached <= prior then return nil end
  redis.call("HSET", key, name, fmt(window) .. ":" .. fmt(reached))
  local left = o[3] -- until the limit resets (a balance: never), or the rolling window ends
  if w.span > 0 then left = window + w.span - now end
  if left > 0 and redis.call("PTTL", key) < left then redis.call("PEXPIRE", key, left) end
  return prior, reached
end

-- "alerted", now, m, then per watch: op index (0-based), kind, span, capacity, count, the
-- thresholds; then a "fast" or "acquire" command's arguments, run as itself. Replies
-- {the command's reply, {watch, prior level, new level}...} (watches numbered from 0).
local function cmd_alerted()
  local now, m, j, watches = tonumber(A[2]), tonumber(A[3]), 4, {}
  for i = 1, m do
    local c, ts = tonumber(A[j + 4]), {}
    for q = 1, c do ts[q] = tonumber(A[j + 4 + q]) end
    watches[i] = {k = tonumber(A[j]), kind = A[j + 1], span = tonumber(A[j + 2]),
      cap = tonumber(A[j + 3]), ts = ts}
    j = j + 5 + c
  end
  local inner = {}
  for i = j, #A do inner[#inner + 1] = A[i] end
  A = inner
  local reply, crossed = COMMANDS[A[1]](), {}
  if reply[1] ~= 1 or reply[2] ~= 0 then return {reply, crossed} end
  local at, w = 3, OP - 1 -- where the ops start, and their width, in "fast" and in "acquire"
  if A[1] == "acquire" then at, w = 5, OP end
  for i, wt in ipairs(watches) do
    local op, r = at + 1 + w * wt.k, 2 + 5 * wt.k
    local o = {reply[r + 1], reply[r + 2], reply[r + 3], reply[r + 4], reply[r + 5]}
    local prior, reached = alert_cross(now, wt, K[tonumber(A[op]) + 1], A[op + 1] .. "!" .. wt.kind, o)
    if prior then crossed[#crossed + 1] = {i - 1, prior, reached} end
  end
  return {reply, crossed}
end
COMMANDS.alerted = cmd_alerted

-- A batch: many calls' commands in one script run, so one event loop's concurrent decisions
-- cost one round trip (single server only: on Cluster a script's keys share one slot).
-- A[2] = n, then per call its number of keys and of arguments, then every call's arguments;
-- KEYS holds every call's keys in order. One call's error is its own reply, not the batch's.
local function cmd_batch()
  local keys, args, n = KEYS, ARGV, tonumber(ARGV[2])
  local kat, aat, replies = 1, 3 + 2 * n, {}
  for i = 1, n do
    local nk, na = tonumber(args[1 + 2 * i]), tonumber(args[2 + 2 * i])
    K, A = {}, {}
    for j = 1, nk do K[j] = keys[kat + j - 1] end
    for j = 1, na do A[j] = args[aat + j - 1] end
    kat, aat = kat + nk, aat + na
    local ok, reply = pcall(COMMANDS[A[1]])
    if ok then
      replies[i] = reply
    elseif type(reply) == "table" and reply.err then
      replies[i] = reply
    else
      replies[i] = {err = tostring(reply)}
    end
  end
  return replies
end
COMMANDS.batch = cmd_batch

return COMMANDS[A[1]]()
