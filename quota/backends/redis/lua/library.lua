-- The Redis function library (FUNCTION LOAD, FCALL): the acquire of core.lua, loaded once
-- per server instead of re-run from the top on every call as a script is. Its function is
-- registered under a name that carries the library's version (quota/backends/redis/codec.py
-- appends the register_function line), so gateways of two versions can share a server.
-- FCALL <name> <numkeys> <keys...> now n <op...>: the keys and ops of the script's "fast".

local bound = false

local function quota_acquire(keys, args)
  if not bound then -- the globals a library may not touch while it loads
    bind_states()
    bound = true
  end
  return (acquire_flat(keys, args, 2, tonumber(args[1]), OP - 1))
end
