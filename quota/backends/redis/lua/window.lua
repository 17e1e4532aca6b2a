-- The sliding window's acquire on its binary log as stored (states.lua): one pass over the
-- digits, then the new log spliced from the old one's bytes, instead of decoding the log into
-- a table, acquiring on it (algorithms.lua) and encoding the result. The same outcome and the
-- same log as ALGORITHMS.s.acquire then encode (tests/test_redis_states.py compares them), the
-- digit widths kept while the new values fit them. It returns nil where the general path must
-- run instead: a negative time, a value past its width, a log that empties or merges twice, a
-- result past the listpack size whose text might fit it (encode then chooses).
-- Needs states.lua loaded before it.

local function amount_at(b, i, wa)
  if wa == 0 then return 1 end
  if wa == 1 then return b[i] end
  return get(b, i, wa)
end

-- One pass: the first live entry (index, time, amount), the last time, the live amount, the
-- first smallest gap between live entries and the index of its later entry, amounts not 1.
local function sw_scan(b, now, window, wf, wd, wa)
  local step, i = wd + wa, 3 + wf + wa
  local n = 1 + (#b - i + 1) / step
  local t, a, k = get(b, 3, wf), amount_at(b, 3 + wf, wa), 1
  while t + window <= now do -- the expired entries, oldest first
    if k == n then return nil, nil, nil, t, 0, nil, nil, 0 end
    t, a, k = t + get(b, i, wd), amount_at(b, i + wd, wa), k + 1
    i = i + step
  end
  local first, t_first, used, gap, best, others = k, t, a, LARGEST, nil, a ~= 1 and 1 or 0
  if wd == 2 and wa == 0 then -- the common shapes, without a branch on the widths
    for m = k + 1, n do
      local d = b[i] * 128 + b[i + 1]
      t, i = t + d, i + 2
      if d < gap then gap, best = d, m end
    end
    used = used + n - k
  elseif wd == 2 and wa == 1 then
    for m = k + 1, n do
      local d, x = b[i] * 128 + b[i + 1], b[i + 2]
      t, i, used = t + d, i + 3, used + x
      if x ~= 1 then others = others + 1 end
      if d < gap then gap, best = d, m end
    end
  elseif wd == 2 and wa == 2 then -- a busy window: merged entries past 127
    for m = k + 1, n do
      local d, x = b[i] * 128 + b[i + 1], b[i + 2] * 128 + b[i + 3]
      t, i, used = t + d, i + 4, used + x
      if x ~= 1 then others = others + 1 end
      if d < gap then gap, best = d, m end
    end
  else
    for m = k + 1, n do
      local d, x = get(b, i, wd), amount_at(b, i + wd, wa)
      t, i, used = t + d, i + step, used + x
      if x ~= 1 then others = others + 1 end
      if d < gap then gap, best = d, m end
    end
  end
  return first, t_first, a, t, used, best and gap, best, others
end

-- Where the live entries from `from` (time t, amount a) on free `need` (first_free).
local function sw_free(b, now, window, shape, from, t, a, need)
  local wd, wa = shape[2], shape[3]
  local step, base = wd + wa, 3 + shape[1] + wa
  local freed, i = a, base + (from - 1) * step
  if freed >= need then return t + window - now end
  for _ = from + 1, 1 + (#b - base + 1) / step do
    t = t + get(b, i, wd)
    freed = freed + amount_at(b, i + wd, wa)
    i = i + step
    if freed >= need then return t + window - now end
  end
  return -1
end

-- w digits of v, or nil when v needs more (or is not 1 where amounts take no digits).
local function digits(v, w)
  if w == 0 then return v == 1 and "" or nil end
  if v >= 128 ^ w then return nil end
  if w == 1 then return char(v) end
  if w == 2 then
    local low = v % 128
    return char((v - low) / 128, low)
  end
  local out = {}
  put(out, 0, v, w)
  return char(unpk(out, 1, w))
end

-- Building the new log: the first entry (with the header), old entries, new entries.
local function sw_head(b, t, a, wa)
  local time, amount = digits(t, width(t)), digits(a, wa)
  if not amount then return nil end
  return char(#time, b[2]) .. time .. amount
end

local function sw_copy(raw, shape, lo, hi)
  if lo > hi then return "" end
  local step, base = shape[2] + shape[3], 3 + shape[1] + shape[3]
  return sub(raw, base + (lo - 2) * step, base + (hi - 1) * step - 1)
end

local function sw_entry(shape, d, a)
  if shape[2] == 2 and shape[3] == 1 and d < 16384 and a < 128 then -- one call: the usual shape
    local low = d % 128
    return char((d - low) / 128, low, a)
  end
  local delta, amount = digits(d, shape[2]), digits(a, shape[3])
  if not (delta and amount) then return nil end
  return delta .. amount
end

-- Delta and amount of entry k >= 2.
local function sw_at(b, shape, k)
  local wd, wa = shape[2], shape[3]
  local i = 3 + shape[1] + wa + (k - 2) * (wd + wa)
  return get(b, i, wd), amount_at(b, i + wd, wa)
end

-- Whether the text of the new log might fit the listpack size (then encode decides): a lower
-- bound of its length from the live entries (never fewer after), the first time's digits
-- (8 from 36^7 ms, 1972 on) and the amounts other than 1 (a merge may take one away).
local function sw_text_fits(live, t_first, others)
  local least = 2 * live - 1 + (t_first >= 78364164096 and 7 or 0)
  if others > 1 then least = least + 2 * (others - 1) end
  return least <= LISTPACK
end

-- The new log after charging cost > 0 at time t to the live entries first..n (first at
-- t_first with a_first, the last at `last`, the first closest pair ending at `best`): added to
-- the last entry at its time, or appended and, past precision, merged once.
local function sw_grow(raw, b, shape, live, t, cost, precision)
  local first, t_first, a_first, last, gap, best, n = unpk(live, 1, 7)
  local wa = shape[3]
  -- the first live entry as it stands: its bytes when it is the first stored
  local head = first == 1 and sub(raw, 1, 2 + shape[1] + wa) or sw_head(b, t_first, a_first, wa)
  if last == t then -- the same millisecond as the last entry: its amount grows
    if n == first then return sw_head(b, t_first, a_first + cost, wa) end
    local d, a = sw_at(b, shape, n)
    local entry = sw_entry(shape, d, a + cost)
    return head and entry and head .. sw_copy(raw, shape, first + 1, n - 1) .. entry
  end
  local count, tail = n - first + 1, sw_entry(shape, t - last, cost)
  if count < precision then -- appended, no merge
    return head and tail and head .. sw_copy(raw, shape, first + 1, n) .. tail
  end
  if count > precision then return nil end -- compress would merge more than once
  if not gap or t - last < gap then -- the closest pair is the last entry and the new one
    if n == first then return sw_head(b, t, a_first + cost, wa) end
    local d, a = sw_at(b, shape, n)
    local merged = sw_entry(shape, d + t - last, a + cost)
    return head and merged and head .. sw_copy(raw, shape, first + 1, n - 1) .. merged
  end
  local d, a = sw_at(b, shape, best)
  if best - 1 == first then -- the first pair: its later entry becomes the first
    local later = sw_head(b, t_first + d, a_first + a, wa)
    return later and tail and later .. sw_copy(raw, shape, best + 1, n) .. tail
  end
  local d0, a0 = sw_at(b, shape, best - 1)
  local merged = sw_entry(shape, d0 + d, a0 + a)
  if not (head and merged and tail) then return nil end
  return head .. sw_copy(raw, shape, first + 1, best - 2) .. merged
    .. sw_copy(raw, shape, best + 1, n) .. tail
end

-- ALGORITHMS.s.acquire on a stored binary log: its new stored form (false when unchanged by
-- a denial), its outcome and the new log's expiry; nil when the general path must run.
local function sw_stored(raw, now, p, cost)
  local b = bytes_of(raw)
  local wf, wd = b[1], (b[2] or 0) % 9
  if not wf or wf > NEGATIVE then return nil end
  local wa, limit, window = (b[2] - wd) / 9, p[1], p[2]
  local first, t_first, a_first, last, used, gap, best, others = sw_scan(b, now, window, wf, wd, wa)
  local shape, reset, left = {wf, wd, wa}, 0, limit - used
  if first then reset = last + window - now end
  if cost > limit or cost > left then
    local retry = -1
    if cost <= limit then
      retry = sw_free(b, now, window, shape, first, t_first, a_first, cost - left)
    end
    return false, {false, left > 0 and left or 0, reset, retry, 0}
  end
  if not first then return nil end -- every entry expired
  local n = 1 + (#b - 2 - wf - wa) / (wd + wa)
  local t, stored = now > last and now or last, raw
  if cost > 0 then
    local live = {first, t_first, a_first, last, gap, best, n}
    stored, last, reset = sw_grow(raw, b, shape, live, t, cost, p[3]), t, t + window - now
  elseif first > 1 then -- charging nothing: the expired entries go
    local head = sw_head(b, t_first, a_first, wa)
    stored = head and head .. sw_copy(raw, shape, first + 1, n)
  end
  if not stored or (#stored > LISTPACK and sw_text_fits(n - first + 1, t_first, others)) then
    return nil
  end
  return stored, {true, left - cost, reset, 0, t}, last + window
end
