-- How states are stored in the hashes, read back whatever version wrote them.
--
-- Logs (sliding window, concurrency, usage history) are binary, in base-128 digits (every byte
-- below 128: valid UTF-8, so redis-py clients that decode replies read it unchanged):
--   byte 1: wf + 8 * neg, wf = digits of the first entry's time (1-8), neg = 1 when it is < 0;
--   byte 2: wd + 9 * wa, wd = digits of every later time delta (1-8), wa = digits of every
--           amount (0-8; 0 when every amount is 1);
--   then the first time's wf digits (big-endian, its absolute value) and its amount's wa, then
--   per later entry its delta from the entry before (wd digits) and its amount (wa digits).
-- Fixed widths decode without a branch per byte. Earlier versions wrote base-36 text
-- ("lq5o8n4w,2ee,1zk:3": time deltas, ":amount" when not 1), which still decodes (its first
-- byte is a digit, a letter or "-"; the binary's is 1-16). A log is written as that text when
-- a value does not fit the binary form (a negative delta or amount), or when the binary form
-- passes 64 bytes (Redis's listpack limit for a hash's values) and the text does not.
-- Counters, buckets and balances stay decimal text ("start,count").
-- quota/backends/redis/stored.py reads and writes the same formats.
--
-- A Redis function library may not touch globals while it loads: bind_states() binds them,
-- called by the script at its start and by the library's function at its first call.
-- Needs arith.lua (fmt) and algorithms.lua (ALGORITHMS) loaded before it.

local byte, char, sub, find, gmatch, concat, tonum, unpk

local function bind_states()
  byte, char, sub, find, gmatch = string.byte, string.char, string.sub, string.find, string.gmatch
  concat, tonum, unpk = table.concat, tonumber, unpack
end

local NEGATIVE = 8 -- added to byte 1 when the first time is negative
local LARGEST = 2 ^ 53 -- a delta from here on is written as text
local LISTPACK = 64 -- Redis keeps a hash compact while its values stay within this
local CHUNK = 4000 -- bytes per string.byte / string.char call (Lua's C stack is ~8000)

-- the base-36 text of earlier versions ----------------------------------------------------

local B36 = "0123456789abcdefghijklmnopqrstuvwxyz"

local function b36(n)
  if n < 0 then return "-" .. b36(-n) end
  if n < 36 then return sub(B36, n + 1, n + 1) end
  local s = ""
  while n > 0 do
    local d = n % 36
    s = sub(B36, d + 1, d + 1) .. s
    n = (n - d) / 36
  end
  return s
end

local function unb36(s)
  if byte(s) == 45 then return -tonum(sub(s, 2), 36) end -- "-"
  return tonum(s, 36)
end

local function text_log(state)
  local parts, prev, n = {}, 0, 0
  for i = 1, #state, 2 do
    local s = b36(state[i] - prev)
    prev = state[i]
    if state[i + 1] ~= 1 then s = s .. ":" .. b36(state[i + 1]) end
    n = n + 1
    parts[n] = s
  end
  return concat(parts, ",")
end

local function log_of_text(raw)
  local state, prev, n = {}, 0, 0
  for t, amount in gmatch(raw, "([^,:]+):?([^,]*)") do
    prev = prev + unb36(t)
    state[n + 1] = prev
    state[n + 2] = amount ~= "" and unb36(amount) or 1
    n = n + 2
  end
  return state
end

local function numbers_of_text(raw)
  local state, n, from = {}, 0, 1
  while true do
    local comma = find(raw, ",", from, true)
    n = n + 1
    if not comma then
      state[n] = tonum(sub(raw, from))
      return state
    end
    state[n] = tonum(sub(raw, from, comma - 1))
    from = comma + 1
  end
end

-- the binary log --------------------------------------------------------------------------

-- How many base-128 digits v >= 0 takes (1 for 0).
local function width(v)
  local w, top = 1, 128
  while v >= top do
    w, top = w + 1, top * 128
  end
  return w
end

-- Write v's w digits into out after index k; returns the new last index.
local function put(out, k, v, w)
  if w == 1 then
    out[k + 1] = v
  elseif w == 2 then
    local low = v % 128
    out[k + 1], out[k + 2] = (v - low) / 128, low
  else
    for i = k + w, k + 1, -1 do
      local digit = v % 128
      out[i] = digit
      v = (v - digit) / 128
    end
  end
  return k + w
end

local function chars(out, k)
  if k <= CHUNK then return char(unpk(out, 1, k)) end
  local parts = {}
  for from = 1, k, CHUNK do
    parts[#parts + 1] = char(unpk(out, from, math.min(k, from + CHUNK - 1)))
  end
  return concat(parts)
end

-- Bytes the base-36 text of a log takes.
local function text_length(state)
  local total = #state / 2 - 1 -- commas
  local prev = 0
  for i = 1, #state, 2 do
    local d, a = state[i] - prev, state[i + 1]
    prev = state[i]
    if d < 0 then d, total = -d, total + 1 end
    local w, top = 1, 36
    while d >= top do w, top = w + 1, top * 36 end
    total = total + w
    if a ~= 1 then
      w, top = 2, 36 -- ":" and a digit
      while a >= top do w, top = w + 1, top * 36 end
      total = total + w
    end
  end
  return total
end

-- The binary form of a log, or nil when a value does not fit it; and a lower bound of the
-- length of its text.
local function binary_log(state)
  local n, first = #state, state[1]
  local most, largest, prev, others = 0, 1, first, 0
  for i = 3, n, 2 do
    local d = state[i] - prev
    prev = state[i]
    if d > most then most = d elseif d < 0 then return nil end
  end
  for i = 2, n, 2 do
    local a = state[i]
    if a ~= 1 then
      others = others + 1
      if a > largest then largest = a elseif a < 1 then return nil end
    end
  end
  if most >= LARGEST then return nil end
  local magnitude = first < 0 and -first or first
  local wf, wd, wa = width(magnitude), width(most), largest == 1 and 0 or width(largest)
  local out = {wf + (first < 0 and NEGATIVE or 0), wd + 9 * wa}
  local k = put(out, 2, magnitude, wf)
  if wa > 0 then k = put(out, k, state[2], wa) end
  prev = first
  for i = 3, n, 2 do
    local d, a = state[i] - prev, state[i + 1]
    prev = state[i]
    if wd == 2 then
      local low = d % 128
      out[k + 1], out[k + 2], k = (d - low) / 128, low, k + 2
    else
      k = put(out, k, d, wd)
    end
    if wa == 1 then
      out[k + 1], k = a, k + 1
    elseif wa > 0 then
      k = put(out, k, a, wa)
    end
  end
  return chars(out, k), n - 1 + 2 * others -- a character and a comma per entry, ":x" per amount
end

local function bytes_of(raw)
  local n = #raw
  if n <= CHUNK then return {byte(raw, 1, n)} end
  local out = {}
  for from = 1, n, CHUNK do
    for _, b in ipairs({byte(raw, from, math.min(n, from + CHUNK - 1))}) do out[#out + 1] = b end
  end
  return out
end

-- Read w digits of b from index i.
local function get(b, i, w)
  if w == 1 then return b[i] end
  if w == 2 then return b[i] * 128 + b[i + 1] end
  local v = 0
  for m = i, i + w - 1 do v = v * 128 + b[m] end
  return v
end

local function log_of_binary(raw)
  local b = bytes_of(raw)
  local wf, wd = b[1], b[2] % 9
  local wa = (b[2] - wd) / 9
  local negative = wf > NEGATIVE
  if negative then wf = wf - NEGATIVE end
  local t = get(b, 3, wf)
  if negative then t = -t end
  local state, n, i, last = {t, 1}, 2, 3 + wf, #b
  if wa > 0 then state[2], i = get(b, i, wa), i + wa end
  if wd == 2 and wa == 0 then -- gaps under 16.4 s, every amount 1: the common case
    while i < last do
      t = t + b[i] * 128 + b[i + 1]
      state[n + 1], state[n + 2], n, i = t, 1, n + 2, i + 2
    end
    return state
  end
  while i <= last do -- the digits read inline (a call per entry would cost more than it)
    if wd == 2 then
      t = t + b[i] * 128 + b[i + 1]
    elseif wd == 1 then
      t = t + b[i]
    else
      t = t + get(b, i, wd)
    end
    i = i + wd
    local a = 1
    if wa == 1 then
      a = b[i]
    elseif wa == 2 then
      a = b[i] * 128 + b[i + 1]
    elseif wa > 0 then
      a = get(b, i, wa)
    end
    state[n + 1], state[n + 2], n, i = t, a, n + 2, i + wa
  end
  return state
end

-- what the commands call ------------------------------------------------------------------

local function encode(code, state)
  if ALGORITHMS[code].log then
    if #state == 0 then return "" end
    local raw, least = binary_log(state)
    if raw and (#raw <= LISTPACK or least > LISTPACK or text_length(state) > LISTPACK) then
      return raw
    end
    return text_log(state)
  end
  if #state == 2 then return fmt(state[1]) .. "," .. fmt(state[2]) end
  local parts = {}
  for i = 1, #state do parts[i] = fmt(state[i]) end
  return concat(parts, ",")
end

local function decode(code, raw)
  if not raw or raw == "" then return {} end
  if byte(raw) <= 2 * NEGATIVE then return log_of_binary(raw) end
  if ALGORITHMS[code].log then return log_of_text(raw) end
  return numbers_of_text(raw)
end

-- A stored value as the text of earlier versions (how reservation records keep undo images:
-- their separators never meet a text state, and records of earlier versions compare alike).
local function as_text(raw)
  if raw ~= "" and byte(raw) <= 2 * NEGATIVE then return text_log(log_of_binary(raw)) end
  return raw
end
