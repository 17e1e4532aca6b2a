-- Exact integer arithmetic for the Lua transcription of quota/algorithms.
--
-- Redis runs Lua 5.1, whose numbers are IEEE doubles. Every value quota stores or computes stays
-- an integer below 2^53, where doubles are exact for + - * and comparisons. Division is exact
-- too once floored: for integers |a| < 2^53 and b >= 1, math.floor(a / b) equals Python's a // b
-- (a quotient k - 1/b could only round up to k if 1/b were under half an ulp of k, i.e.
-- b > 2^53 / k, but then |a| = k*b - 1 would reach 2^53). What is NOT exact is tostring(), which
-- prints 14 significant digits: state is serialized with string.format("%d").
-- tests/test_lua_arith.py checks both facts against Python on a real redis-server.

local function floordiv(a, b)
  return math.floor(a / b)
end

local function ceildiv(a, b)
  return -math.floor(-a / b)
end

local function fmt(n)
  return string.format("%d", n)
end
