"""Each Lua step function against its Python definition, case by case, on a real redis-server.

The cases are the states a random run of the Python functions reaches, with a tiny clock range
so that ties (equal times, equal gaps, boundaries of windows, leases and the skew guard) happen
all the time; every acquire, settle and expiry of the run is replayed in Lua in one EVAL.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from quota.algorithms import ALGORITHMS, MAX_SAFE, Outcome
from quota.backends.redis.codec import CODES

LUA = resources.files("quota") / "backends" / "redis" / "lua"
HARNESS = (
    (LUA / "arith.lua").read_text()
    + (LUA / "algorithms.lua").read_text()
    + """
local function parse(s)
  local out = {}
  for x in string.gmatch(s, "[^,]+") do out[#out + 1] = tonumber(x) end
  return out
end
local function list(t)
  local parts = {}
  for i = 1, #t do parts[i] = fmt(t[i]) end
  return table.concat(parts, ",")
end
local out = {}
for i = 1, #ARGV, 6 do
  local algo, kind = ALGORITHMS[ARGV[i]], ARGV[i + 1]
  local state, now, p, a = parse(ARGV[i + 2]), tonumber(ARGV[i + 3]), parse(ARGV[i + 4]),
    parse(ARGV[i + 5])
  if kind == "acquire" then
    local new, o = algo.acquire(state, now, p, a[1])
    local flag = o[1] and "1" or "0"
    out[#out + 1] = list(new) .. "|" .. flag .. "," .. list({o[2], o[3], o[4], o[5]})
  elseif kind == "settle" then
    out[#out + 1] = list(algo.settle(state, now, p, a[1], a[2], a[3]))
  elseif algo.expiry then
    out[#out + 1] = fmt(algo.expiry(state, p))
  else
    out[#out + 1] = "none"
  end
end
return out
"""
)


def _csv(values: Any) -> str:
    return ",".join(str(v) for v in values)


def _python(algorithm: str, kind: str, state: tuple[int, ...], now: int, p: Any, a: Any) -> str:
    algo = ALGORITHMS[algorithm]
    if kind == "acquire":
        new, o = algo.acquire(state, now, p, a[0])
        retry = -1 if o.retry_after is None else o.retry_after
        return f"{_csv(new)}|{int(o.allowed)},{_csv((o.remaining, o.reset_after, retry, o.anchor))}"
    if kind == "settle":
        return _csv(algo.settle(state, now, p, *a))
    expiry = algo.expiry(state, p)
    return "none" if expiry is None else str(expiry)


@st.composite
def params(draw: st.DrawFn, algorithm: str) -> tuple[int, ...]:
    n = st.integers
    if algorithm == "sliding_window":  # windows near SKEW_MS reach the refund guard's edge
        return (draw(n(1, 30)), draw(n(1, 60) | n(995, 1_060)), draw(n(1, 4)))
    if algorithm == "concurrency":
        return (draw(n(1, 4)), draw(n(1, 40)))
    if algorithm == "token_bucket":
        return (draw(n(1, 5)), draw(n(1, 9)), draw(n(1, 12)))
    if algorithm == "balance":
        return (draw(n(0, 30) | st.just(MAX_SAFE - 5)),)
    if algorithm == "history":  # (day_start, day_end, keep_from): tiny days, 1 to 4 kept
        size = draw(n(1, 9))
        return (0, size, -(draw(n(1, 4)) - 1) * size)
    start = draw(n(0, 60))
    return (draw(n(1, 15)), start, start + draw(n(1, 60)))


@st.composite
def runs(draw: st.DrawFn) -> tuple[str, list[tuple[Any, ...]]]:
    """A random run of one algorithm; returns every (kind, state, now, params, args) case."""
    # The log algorithms have the most branches: draw them more often.
    algorithm = draw(st.sampled_from([*sorted(ALGORITHMS), "sliding_window", "concurrency"]))
    p = draw(params(algorithm))
    window = algorithm in ("fixed_window", "calendar")
    state: tuple[int, ...] = ()
    now = draw(st.integers(0, 50))
    charges: list[tuple[int, int]] = []
    cases: list[tuple[Any, ...]] = []
    for _ in range(draw(st.integers(1, 40))):
        # Mostly small equal-ish steps (ties, merges of equal gaps), sometimes a jump.
        small = draw(st.integers(0, 9)) < 8
        now = max(
            0, now + draw(st.sampled_from([-2, 0, 1, 2, 2, 3]) if small else st.integers(-3, 90))
        )
        if window:  # the caller passes the window holding ``now``
            size = p[2] - p[1]
            start = now // size * size
            p = (p[0], start, start + size)
        if algorithm == "history":  # the day holding ``now`` and the oldest day kept
            size, span = p[1] - p[0], p[1] - p[2]
            start = now // size * size
            p = (start, start + size, start + size - span)
        move = draw(st.sampled_from(["acquire", "acquire", "settle", "expiry"]))
        if move == "acquire" or (not charges and move == "settle"):
            cost = draw(st.sampled_from([1, 1, 1, 0, 2, 3, p[0], MAX_SAFE]))
            cases.append(("acquire", state, now, p, (cost,)))
            new, out = ALGORITHMS[algorithm].acquire(state, now, p, cost)
            if out.allowed:
                state = new
                charges.append((out.anchor, cost))
        elif move == "settle":
            anchor, charged = charges.pop(draw(st.integers(0, len(charges) - 1)))
            actual = draw(st.integers(0, 12) | st.sampled_from([0, charged, MAX_SAFE]))
            cases.append(("settle", state, now, p, (anchor, charged, actual)))
            state = ALGORITHMS[algorithm].settle(state, now, p, anchor, charged, actual)
        else:
            cases.append(("expiry", state, now, p, ()))
    return algorithm, cases


@pytest.fixture(scope="module")
def client(redis_port: int) -> redis.Redis:
    return redis.Redis(port=redis_port, decode_responses=True)


@settings(max_examples=700, deadline=None)
@given(runs())
def test_lua_step_functions_match_python(client: redis.Redis, run: Any) -> None:
    algorithm, cases = run
    args: list[str] = []
    for kind, state, now, p, a in cases:
        args += [CODES[algorithm], kind, _csv(state), str(now), _csv(p), _csv(a)]
    lua = client.eval(HARNESS, 0, *args)
    for case, got in zip(cases, lua, strict=True):  # type: ignore[arg-type]
        assert got == _python(algorithm, *case), (algorithm, case)


def test_outcome_fields_are_what_the_harness_compares() -> None:
    # The harness prints allowed, remaining, reset_after, retry_after, anchor: all of Outcome.
    assert list(Outcome._fields) == [
        "allowed",
        "remaining",
        "reset_after",
        "retry_after",
        "anchor",
    ]


#: Boundaries a random run reaches rarely: (algorithm, kind, state, now, params, args).
EDGES: list[tuple[str, str, tuple[int, ...], int, tuple[int, ...], tuple[int, ...]]] = [
    # the refund guard exactly at anchor + window - SKEW_MS, and one ms either side
    ("sliding_window", "settle", (10, 1, 20, 1), 35, (5, 1_030, 4), (5, 1, 0)),
    ("sliding_window", "settle", (10, 1, 20, 1), 34, (5, 1_030, 4), (5, 1, 0)),
    ("sliding_window", "settle", (10, 1, 20, 1), 36, (5, 1_030, 4), (5, 1, 0)),
    # equal gaps: the first closest pair merges
    ("sliding_window", "acquire", (0, 1, 5, 1), 10, (5, 60, 2), (1,)),
    # a charge whose window just ended cannot be refunded
    ("sliding_window", "settle", (0, 3), 60, (5, 60, 2), (0, 3, 0)),
    ("fixed_window", "settle", (0, 3), 60, (5, 0, 60), (0, 3, 0)),
    ("fixed_window", "settle", (0, 3), 59, (5, 0, 60), (0, 3, 0)),
    # allowances at the end of their span, and before it
    ("allowance", "acquire", (0, 3), 60, (5, 0, 60), (1,)),
    ("allowance", "acquire", (), 59, (5, 0, 60), (2,)),
    ("allowance", "acquire", (), 0, (5, 10, 60), (5,)),
    # a bucket refilled to exactly full, and a debt at the saturation floor
    ("token_bucket", "acquire", (0, 0), 10, (1, 1, 10), (10,)),
    ("token_bucket", "settle", (5, 0), 0, (1, 1, 10), (0, 0, MAX_SAFE)),
    # balances at the saturation bounds
    ("balance", "settle", (-MAX_SAFE + 3,), 0, (0,), (0, 0, 10)),
    ("balance", "settle", (MAX_SAFE - 3,), 0, (0,), (0, 10, 0)),
    # a lease ending exactly now, and a second lease in the same ms
    ("concurrency", "acquire", (0, 1), 40, (1, 40), (1,)),
    ("concurrency", "acquire", (40, 1), 40, (2, 40), (1,)),
]


@pytest.mark.parametrize(("algorithm", "kind", "state", "now", "p", "a"), EDGES)
def test_lua_matches_python_on_boundaries(
    client: redis.Redis,
    algorithm: str,
    kind: str,
    state: tuple[int, ...],
    now: int,
    p: tuple[int, ...],
    a: tuple[int, ...],
) -> None:
    args = [CODES[algorithm], kind, _csv(state), str(now), _csv(p), _csv(a)]
    assert client.eval(HARNESS, 0, *args) == [_python(algorithm, kind, state, now, p, a)]
