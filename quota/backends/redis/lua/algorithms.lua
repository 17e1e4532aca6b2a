-- The Lua transcription of quota/algorithms: the same pure step functions, line for line.
-- Read the Python for the why of every rule; this file only keeps the arithmetic identical.
-- States and params are 1-based arrays of integers; an outcome is
-- {allowed, remaining, reset_after, retry_after (-1 = never), anchor}.
-- Needs arith.lua (floordiv, ceildiv) loaded before it.

local MAX_SAFE = 9007199254740991
local SKEW_MS = 1000
local NEVER = -1

-- logs: sliding_window and concurrency ---------------------------------------------------

local function live(state, now, span)
  local out, n = {}, 0 -- a counter: the length operator costs more than the copy
  for i = 1, #state, 2 do
    if state[i] + span > now then
      out[n + 1] = state[i]
      out[n + 2] = state[i + 1]
      n = n + 2
    end
  end
  return out
end

local function used(log)
  local s = 0
  for i = 2, #log, 2 do s = s + log[i] end
  return s
end

local function first_free(log, now, span, need)
  local freed = 0
  for i = 1, #log, 2 do
    freed = freed + log[i + 1]
    if freed >= need then return log[i] + span - now end
  end
  return NEVER -- unreachable: need never exceeds the log
end

local function check(state, now, span, limit, cost)
  local log = live(state, now, span)
  local u = used(log)
  local reset = 0
  if #log > 0 then reset = log[#log - 1] + span - now end
  if cost > limit then
    return log, u, reset, {false, math.max(0, limit - u), reset, NEVER, 0}
  end
  if cost > limit - u then
    local retry = first_free(log, now, span, u - (limit - cost))
    return log, u, reset, {false, math.max(0, limit - u), reset, retry, 0}
  end
  return log, u, reset, nil
end

local function compress(log, precision)
  while #log / 2 > precision do
    local best, gap = 1, log[3] - log[1]
    for i = 3, #log - 3, 2 do
      if log[i + 2] - log[i] < gap then best, gap = i, log[i + 2] - log[i] end
    end
    log[best + 3] = log[best + 3] + log[best + 1]
    table.remove(log, best)
    table.remove(log, best)
  end
end

local function log_expiry(state, p)
  if #state == 0 then return 0 end
  return state[#state - 1] + p[2]
end

local function sw_acquire(state, now, p, cost)
  local limit, window, precision = p[1], p[2], p[3]
  local log, u, reset, denial = check(state, now, window, limit, cost)
  if denial then return state, denial end
  local t = now
  if #log > 0 then t = math.max(now, log[#log - 1]) end
  if cost > 0 then
    if #log > 0 and log[#log - 1] == t then
      log[#log] = log[#log] + cost
    else
      log[#log + 1] = t
      log[#log + 1] = cost
      compress(log, precision)
    end
    reset = t + window - now
  end
  return log, {true, limit - u - cost, reset, 0, t}
end

local function sw_settle(state, now, p, anchor, charged, actual)
  local window, precision = p[2], p[3]
  local log = live(state, now, window)
  local delta = actual - charged
  if delta == 0 or anchor + window <= now then return log end
  if delta > 0 then delta = math.min(delta, MAX_SAFE - used(log)) end
  for i = 1, #log, 2 do
    if log[i] >= anchor then
      if delta < 0 and log[i] > anchor and anchor + window - SKEW_MS <= now then return log end
      log[i + 1] = math.max(0, log[i + 1] + delta)
      if log[i + 1] == 0 then
        table.remove(log, i)
        table.remove(log, i)
      end
      return log
    end
  end
  if delta > 0 then
    log[#log + 1] = anchor
    log[#log + 1] = delta
    compress(log, precision)
  end
  return log
end

local function cc_acquire(state, now, p, cost)
  local limit, lease = p[1], p[2]
  local log, u, reset, denial = check(state, now, lease, limit, cost)
  if denial then return state, denial end
  if cost == 0 then return log, {true, limit - u, reset, 0, 0} end
  local t = now
  if #log > 0 then t = math.max(now, log[#log - 1] + 1) end
  log[#log + 1] = t
  log[#log + 1] = cost
  return log, {true, limit - u - cost, t + lease - now, 0, t}
end

local function cc_settle(state, now, p, anchor, charged, actual)
  local log = live(state, now, p[2])
  if charged > 0 then
    for i = 1, #log, 2 do
      if log[i] == anchor then
        table.remove(log, i)
        table.remove(log, i)
        break
      end
    end
  end
  return log
end

-- counters: fixed and calendar windows, allowances ---------------------------------------

local function count_of(state, start)
  if #state > 0 and state[1] >= start then return state[1], state[2] end
  return start, 0
end

local function wc_acquire(state, now, p, cost)
  local limit, start, stop = p[1], p[2], p[3]
  local wid, count = count_of(state, start)
  local reset = 0
  if count ~= 0 then reset = stop - now end
  if cost > limit then return state, {false, math.max(0, limit - count), reset, NEVER, 0} end
  if cost > limit - count then
    return state, {false, math.max(0, limit - count), reset, stop - now, 0}
  end
  count = count + cost
  if count == 0 then return {}, {true, limit, 0, 0, wid} end
  return {wid, count}, {true, limit - count, stop - now, 0, wid}
end

local function settle_window(state, now, p, anchor, delta)
  if delta == 0 or now >= p[3] then return state end
  if #state > 0 and state[1] == anchor then
    local count = MAX_SAFE
    if delta <= MAX_SAFE - state[2] then count = state[2] + delta end
    count = math.max(0, count)
    if count == 0 then return {} end
    return {anchor, count}
  end
  if (#state == 0 or state[1] < anchor) and delta > 0 then return {anchor, delta} end
  return state
end

local function wc_settle(state, now, p, anchor, charged, actual)
  return settle_window(state, now, p, anchor, actual - charged)
end

local function wc_expiry(state, p)
  if #state > 0 and state[1] > p[2] then return state[1] + 2 * (p[3] - p[2]) end
  return p[3]
end

local function al_acquire(state, now, p, cost)
  local limit, start, stop = p[1], p[2], p[3]
  local _, count = count_of(state, start)
  if now >= stop then return state, {false, 0, 0, NEVER, 0} end
  local left = math.max(0, limit - count)
  if now < start then
    local retry = NEVER
    if cost <= limit then retry = start - now end
    return state, {false, left, stop - now, retry, 0}
  end
  if cost > limit - count then return state, {false, left, stop - now, NEVER, 0} end
  count = count + cost
  if count == 0 then return {}, {true, limit, stop - now, 0, start} end
  return {start, count}, {true, limit - count, stop - now, 0, start}
end

local function al_expiry(state, p)
  return p[3]
end

-- token bucket ---------------------------------------------------------------------------

local function later(t, ms)
  if ms <= MAX_SAFE - t then return t + ms end
  return MAX_SAFE
end

local function tb_level(state, now, p)
  local rate, period, burst = p[1], p[2], p[3]
  local cap = burst * period
  if #state == 0 then return cap, now end
  local level, last = state[1], state[2]
  if now > last and level < cap then
    if now - last >= ceildiv(cap - level, rate) then
      level = cap
    else
      level = level + (now - last) * rate
    end
  end
  return level, math.max(now, last)
end

local function tb_view(level, lag, p, allowed, retry)
  local rate, period, burst = p[1], p[2], p[3]
  local remaining = floordiv(math.max(0, level), period)
  return {allowed, remaining, later(lag, ceildiv(burst * period - level, rate)), retry, 0}
end

local function tb_acquire(state, now, p, cost)
  local rate, period, burst = p[1], p[2], p[3]
  local cap = burst * period
  local level, last = tb_level(state, now, p)
  local lag = last - now
  if cost > burst then return state, tb_view(level, lag, p, false, NEVER) end
  local need = cost * period
  if level < need then
    return state, tb_view(level, lag, p, false, later(lag, ceildiv(need - level, rate)))
  end
  level = level - need
  local new = {}
  if level < cap then new = {level, last} end
  return new, tb_view(level, lag, p, true, 0)
end

local function tb_settle(state, now, p, anchor, charged, actual)
  local period, burst = p[2], p[3]
  local cap = burst * period
  local level, last = tb_level(state, now, p)
  local delta = actual - charged
  if delta >= 0 then
    local floor = cap - MAX_SAFE
    if delta > floordiv(level - floor, period) then
      level = floor
    else
      level = level - delta * period
    end
  elseif -delta >= ceildiv(cap - level, period) then
    level = cap
  else
    level = level - delta * period
  end
  if level < cap then return {level, last} end
  return {}
end

local function tb_expiry(state, p)
  if #state == 0 then return 0 end
  return later(state[2], ceildiv(p[3] * p[2] - state[1], p[1]))
end

-- balance --------------------------------------------------------------------------------

local function balance_of(state, p)
  if #state > 0 then return state[1] end
  return p[1]
end

local function bl_acquire(state, now, p, cost)
  local b = balance_of(state, p)
  if b - cost < 0 then return state, {false, b, 0, NEVER, 0} end  -- signed, as in Python
  return {b - cost}, {true, b - cost, 0, 0, 0}
end

local function bl_settle(state, now, p, anchor, charged, actual)
  local b, delta = balance_of(state, p), actual - charged
  if delta > 0 and b < 0 and delta > b + MAX_SAFE then return {-MAX_SAFE} end
  if delta < 0 and b > 0 and -delta > MAX_SAFE - b then return {MAX_SAFE} end
  return {b - delta}
end

local function bl_top_up(state, p, amount)
  local b = balance_of(state, p)
  if amount <= MAX_SAFE - b then return {b + amount} end
  return {MAX_SAFE}
end

-- history: daily totals, never denies ----------------------------------------------------

local function hs_find(log, day)
  for i = 1, #log, 2 do
    if log[i] >= day then return i, log[i] == day end
  end
  return #log + 1, false
end

local function hs_add(log, day, delta)
  local i, found = hs_find(log, day)
  if found then
    local amount = MAX_SAFE
    if delta <= MAX_SAFE - log[i + 1] then amount = log[i + 1] + delta end
    amount = math.max(0, amount)
    if amount ~= 0 then
      log[i + 1] = amount
    else
      table.remove(log, i)
      table.remove(log, i)
    end
  elseif delta > 0 then
    table.insert(log, i, delta)
    table.insert(log, i, day)
  end
end

local function hs_acquire(state, now, p, cost)
  local start, keep = p[1], p[3]
  local log = {}
  for i = 1, #state, 2 do
    if state[i] >= keep then
      log[#log + 1] = state[i]
      log[#log + 1] = state[i + 1]
    end
  end
  if cost > 0 then hs_add(log, start, cost) end
  local i, found = hs_find(log, start)
  local total = 0
  if found then total = log[i + 1] end
  return log, {true, total, 0, 0, start}
end

local function hs_settle(state, now, p, anchor, charged, actual)
  local log = {}
  for i = 1, #state do log[i] = state[i] end
  hs_add(log, anchor, actual - charged)
  return log
end

local function hs_expiry(state, p)
  if #state == 0 then return 0 end
  return state[#state - 1] + (p[2] - p[3]) + (p[2] - p[1])
end

-- registry: one-letter codes chosen by the Python side (quota/backends/redis/codec.py) ----
-- expiry nil = never (balances live in the account's persistent hash).

local ALGORITHMS = {
  s = {acquire = sw_acquire, settle = sw_settle, expiry = log_expiry, log = true},
  c = {acquire = cc_acquire, settle = cc_settle, expiry = log_expiry, log = true},
  w = {acquire = wc_acquire, settle = wc_settle, expiry = wc_expiry},
  a = {acquire = al_acquire, settle = wc_settle, expiry = al_expiry},
  t = {acquire = tb_acquire, settle = tb_settle, expiry = tb_expiry},
  b = {acquire = bl_acquire, settle = bl_settle, top_up = bl_top_up},
  h = {acquire = hs_acquire, settle = hs_settle, expiry = hs_expiry, log = true},
}
