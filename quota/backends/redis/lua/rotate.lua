-- Secret rotation (quota/backends/redis/rotate.py): one account's keys copied under its new
-- name, then deleted only if nothing changed them since they were read.
--
-- KEYS are the account's hashes (windowed states, balances, usage history) and its reservation
-- records, all in one slot. ARGV[1] names the command.

-- Every key as it stands: per key {"h", pttl, field, value, ...} (a hash), {"s", pttl, value}
-- (a record) or {"n"} (missing).
local function snapshot()
  local out = {}
  for i, key in ipairs(KEYS) do
    local kind = redis.call("TYPE", key)["ok"]
    if kind == "hash" then
      local entry = {"h", redis.call("PTTL", key)}
      for _, x in ipairs(redis.call("HGETALL", key)) do entry[#entry + 1] = x end
      out[i] = entry
    elseif kind == "string" then
      out[i] = {"s", redis.call("PTTL", key), redis.call("GET", key)}
    else
      out[i] = {"n"}
    end
  end
  return out
end

-- Delete the keys when they still hold what snapshot returned: from ARGV[2] on, per key a
-- count, then that many strings (the hash's fields and values, or the record). 1 when deleted.
local function drop_if_same()
  local at = 2
  for _, key in ipairs(KEYS) do
    local n = tonumber(ARGV[at])
    local now = {}
    local kind = redis.call("TYPE", key)["ok"]
    if kind == "hash" then now = redis.call("HGETALL", key)
    elseif kind == "string" then now = {redis.call("GET", key)} end
    if #now ~= n then return 0 end
    for j = 1, n do if now[j] ~= ARGV[at + j] then return 0 end end
    at = at + n + 1
  end
  redis.call("DEL", unpack(KEYS))
  return 1
end

local COMMANDS = {snapshot = snapshot, drop_if_same = drop_if_same}

return COMMANDS[ARGV[1]]()
