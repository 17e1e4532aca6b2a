-- The acquire of a decision, on flat arguments: what the library's function runs (FCALL) and
-- what the script's "fast" and "acquire" commands run (EVALSHA), so both give one result.
--
-- K are the call's keys (K[1 + s] is store s, see commands.lua; an FCALL passes them up to
-- the last store its ops use). A[at] is the number of ops; op k (0-based) is the `w`
-- arguments from at + 1 + w * k: store, field, code, up to three params (an absent one is
-- ""), cost, and with w = 8 the meter (what a reservation record keeps). One HMGET per hash
-- before, one HSET per hash after (an HDEL only for states left empty or expired; PEXPIRE
-- only to lengthen the TTL).
-- The reply: allowed, 0 (not a replay), then allowed, remaining, reset, retry (-1 = never),
-- anchor per op, in the order sent.
-- Needs arith.lua, algorithms.lua, states.lua and window.lua loaded before it.

local OP = 8 -- arguments per op with its meter; FCALL and "fast" send OP - 1 (no meter)

-- The ops grouped by hash: the stores in first-seen order, and per store its fields and the
-- indexes (1-based) of its ops.
local function by_store(A, at, n, w)
  local stores, fields, index = {}, {}, {}
  for k = 1, n do
    local j = at + 1 + w * (k - 1)
    local s = A[j]
    local f = fields[s]
    if not f then
      f = {}
      fields[s], index[s] = f, {}
      stores[#stores + 1] = s
    end
    f[#f + 1] = A[j + 1]
    local ix = index[s]
    ix[#ix + 1] = k
  end
  return stores, fields, index
end

-- The stored strings of the ops (false when absent), one HMGET per hash.
local function read_flat(K, stores, fields, index)
  local raws = {}
  for _, s in ipairs(stores) do
    local values = redis.call("HMGET", K[tonumber(s) + 1], unpack(fields[s]))
    local ix = index[s]
    for m = 1, #ix do raws[ix[m]] = values[m] end
  end
  return raws
end

-- Write the new states as the memory engine keeps them: nothing for an empty or expired
-- state; the hash's TTL lengthened to the latest expiry written. A new state is a table, or
-- a string already encoded (window.lua) whose expiry is in `expiries`.
local function write_flat(K, A, at, w, now, news, expiries, params, stores, fields, index)
  for _, s in ipairs(stores) do
    local key, sets, dels, ttl = K[tonumber(s) + 1], {}, {}, 0
    local names, ix = fields[s], index[s]
    for m = 1, #ix do
      local k = ix[m]
      local code, state, value, left = A[at + 3 + w * (k - 1)], news[k], nil, nil
      if type(state) == "string" then
        value, left = state, expiries[k] - now
      elseif #state > 0 then
        local expiry = ALGORITHMS[code].expiry
        if expiry then left = expiry(state, params[k]) - now end
        if not left or left > 0 then value = encode(code, state) end
      end
      if value and (not left or left > 0) then
        sets[#sets + 1], sets[#sets + 2] = names[m], value
        if left and left > ttl then ttl = left end
      else
        dels[#dels + 1] = names[m]
      end
    end
    if #sets > 0 then redis.call("HSET", key, unpack(sets)) end
    if #dels > 0 then redis.call("HDEL", key, unpack(dels)) end
    if ttl > 0 and redis.call("PTTL", key) < ttl then redis.call("PEXPIRE", key, ttl) end
  end
end

-- One op's acquire: on a sliding window's binary log as stored (window.lua), else decoded.
-- Returns the new state (a table, or a string already encoded), the outcome, the decoded
-- state (nil when not decoded) and the expiry of an encoded new state.
local function acquire_one(code, raw, now, p, cost)
  local head = code == "s" and raw and byte(raw) -- nil for an empty string
  if head and head <= NEGATIVE then
    local stored, out, expiry = sw_stored(raw, now, p, cost)
    if stored ~= nil then return stored, out, nil, expiry end
  end
  local state = decode(code, raw)
  local new, out = ALGORITHMS[code].acquire(state, now, p, cost)
  return new, out, state
end

-- Returns the reply, the stored strings read (false when absent) and the outcomes.
local function acquire_flat(K, A, at, now, w)
  local n = tonumber(A[at])
  local stores, fields, index = by_store(A, at, n, w)
  local raws = read_flat(K, stores, fields, index)
  local states, params, news, outs, expiries, allowed = {}, {}, {}, {}, {}, true
  for k = 1, n do
    local j = at + 1 + w * (k - 1)
    local p = {tonumber(A[j + 3]), tonumber(A[j + 4]), tonumber(A[j + 5])}
    params[k] = p
    local cost = tonumber(A[j + 6])
    news[k], outs[k], states[k], expiries[k] = acquire_one(A[j + 2], raws[k], now, p, cost)
    if not outs[k][1] then allowed = false end
  end
  if allowed then
    write_flat(K, A, at, w, now, news, expiries, params, stores, fields, index)
  else -- charge nothing; report the admitted limits as they stand (cost 0)
    for k = 1, n do
      if outs[k][1] then
        local code = A[at + 3 + w * (k - 1)]
        if states[k] then
          local _, out = ALGORITHMS[code].acquire(states[k], now, params[k], 0)
          outs[k] = out
        else
          local _, out = acquire_one(code, raws[k], now, params[k], 0)
          outs[k] = out
        end
      end
    end
  end
  local reply, r = {allowed and 1 or 0, 0}, 2
  for k = 1, n do
    local o = outs[k]
    reply[r + 1], reply[r + 2], reply[r + 3], reply[r + 4], reply[r + 5] =
      o[1] and 1 or 0, o[2], o[3], o[4], o[5]
    r = r + 5
  end
  return reply, raws, outs
end
