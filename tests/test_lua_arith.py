"""The integer arithmetic the Lua engine relies on, checked on a real redis-server.

``quota/algorithms`` keeps every value an integer below 2**53 so that Redis's Lua (doubles)
can agree with Python exactly; this verifies the helpers that make division and printing exact.
"""

from __future__ import annotations

from importlib import resources

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from quota.algorithms import MAX_SAFE

ARITH = (resources.files("quota") / "backends" / "redis" / "lua" / "arith.lua").read_text()
CHECK = (
    ARITH
    + """
local out = {}
for i = 1, #ARGV, 2 do
  local a, b = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  out[#out + 1] = fmt(floordiv(a, b)) .. " " .. fmt(ceildiv(a, b)) .. " " .. fmt(a)
    .. " " .. fmt(math.floor(a / b)) .. " " .. tostring(a)
end
return out
"""
)


@pytest.fixture(scope="module")
def client(redis_port: int) -> redis.Redis:
    return redis.Redis(port=redis_port, decode_responses=True)


def run(client: redis.Redis, pairs: list[tuple[int, int]]) -> list[list[str]]:
    args = [str(x) for pair in pairs for x in pair]
    return [row.split(" ") for row in client.eval(CHECK, 0, *args)]  # type: ignore[union-attr]


def test_tostring_loses_digits_where_fmt_does_not(client: redis.Redis) -> None:
    a, b = 8_000_000_000_000 * 1025 - 1, 1025
    floor, ceil, printed, naive, tostring = run(client, [(a, b)])[0]
    assert (int(floor), int(ceil), int(naive)) == (a // b, -((-a) // b), a // b)
    assert int(printed) == a
    assert tostring != str(a)  # tostring keeps 14 significant digits


@st.composite
def near_multiple(draw: st.DrawFn) -> tuple[int, int]:
    """a just below, at or above a multiple of b: where a rounded quotient could go wrong."""
    b = draw(st.integers(2, 2**30))
    k = draw(st.integers(1, MAX_SAFE // b))
    a = k * b + draw(st.sampled_from([-1, 0, 1]))
    return min(a, MAX_SAFE) * draw(st.sampled_from([1, -1])), b


PAIRS = st.tuples(
    st.integers(-MAX_SAFE, MAX_SAFE) | st.integers(MAX_SAFE - 2**20, MAX_SAFE),
    st.integers(1, 2**10) | st.integers(1, 2**40),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(PAIRS | near_multiple(), min_size=1, max_size=200))
def test_floordiv_ceildiv_and_fmt_match_python(
    client: redis.Redis, pairs: list[tuple[int, int]]
) -> None:
    for (a, b), row in zip(pairs, run(client, pairs), strict=True):
        assert (int(row[0]), int(row[1]), int(row[2])) == (a // b, -((-a) // b), a), (a, b)
