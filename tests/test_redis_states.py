"""How the Redis engine stores states, on a real redis-server: the binary logs, the base-36 text
that earlier versions wrote (still read), and the sliding window's acquire on stored bytes.

- The Python codec (``quota.backends.redis.stored``) and the script's (``lua/states.lua``)
  write the same bytes and read each other's, old text included; every byte is ASCII.
- ``lua/window.lua`` (the sliding window acquired on its stored log, without decoding it) gives
  the outcome and the log of the general path (decode, ``algorithms.lua``, encode) over random
  runs that feed each step's stored log to the next.
- A store whose states were all written in the old text format carries on deciding exactly as
  the memory engine does, and what it writes next is binary.
"""

from __future__ import annotations

import itertools
from importlib import resources
from typing import Any

import pytest
import redis
from conftest import FakeClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_redis_differential import ALGORITHMS, CATALOG, play, step

import quota
from quota.algorithms import ALGORITHMS as STEPS
from quota.algorithms import MAX_SAFE
from quota.backends.memory import MemoryBackend
from quota.backends.redis import RedisBackend
from quota.backends.redis.stored import CODES, decode_state, encode_state, encode_text

LUA = resources.files("quota") / "backends" / "redis" / "lua"
HARNESS = (
    "\n".join(
        (LUA / name).read_text()
        for name in ("arith.lua", "algorithms.lua", "states.lua", "window.lua")
    )
    + """
bind_states()
local function csv(t)
  local parts = {}
  for i = 1, #t do parts[i] = fmt(t[i]) end
  return table.concat(parts, ",")
end
local function nums(s)
  local out = {}
  for x in string.gmatch(s, "[^,]+") do out[#out + 1] = tonumber(x) end
  return out
end
local function seen(state, o, expiry)
  local flag = o[1] and "1" or "0"
  return csv(state) .. "|" .. flag .. "," .. csv({o[2], o[3], o[4], o[5]}) .. "|" .. expiry
end
local out = {}
if ARGV[1] == "codec" then
  for i = 2, #ARGV, 3 do
    out[#out + 1] = encode(ARGV[i], nums(ARGV[i + 1]))
    out[#out + 1] = csv(decode(ARGV[i], ARGV[i + 2]))
  end
  return out
end
-- "window", the first stored log, params, then (now, cost) per step: per step the fast path's
-- result (or "nil"), the general path's, and the stored log the next step starts from.
local raw, p = ARGV[2], nums(ARGV[3])
for i = 4, #ARGV, 2 do
  local now, cost = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local state = decode("s", raw)
  local new, o = ALGORITHMS.s.acquire(state, now, p, cost)
  local expiry = (o[1] and #new > 0) and fmt(ALGORITHMS.s.expiry(new, p)) or ""
  local want = seen(new, o, expiry)
  local got = "nil"
  local stored, fo, fexpiry = sw_stored(raw, now, p, cost)
  if stored ~= nil then
    local kept = stored == false and state or decode("s", stored)
    got = seen(kept, fo, fexpiry and fmt(fexpiry) or "")
    if stored then raw = stored end
  elseif o[1] then
    raw = encode("s", new)
  end
  out[#out + 1] = got
  out[#out + 1] = want
  out[#out + 1] = raw
end
return out
"""
)


@pytest.fixture(scope="module")
def client(redis_port: int) -> redis.Redis:
    return redis.Redis(port=redis_port, decode_responses=True)


def _csv(values: Any) -> str:
    return ",".join(str(v) for v in values)


@st.composite
def logs(draw: st.DrawFn) -> tuple[str, tuple[int, ...]]:
    """A log as the algorithms leave it: ascending times (a first one of any sign), amounts
    from 1, with gaps and amounts of every width."""
    algorithm = draw(st.sampled_from(["sliding_window", "concurrency", "history"]))
    n = draw(st.integers(1, 40))
    t = draw(
        st.sampled_from([0, 5, -90_000, 1_795_622_684_053, 2**50]) | st.integers(-(2**50), 2**50)
    )
    gap = st.sampled_from([0, 1, 35, 127, 128, 16_383, 16_384, 60_000, 2_678_400_000])
    amount = st.sampled_from([1, 1, 1, 2, 127, 128, 500, 16_384, MAX_SAFE]) | st.integers(1, 10**9)
    out: list[int] = []
    for _ in range(n):
        out += (t, draw(amount))
        t += draw(gap | st.integers(0, 10**7))
    return algorithm, tuple(out)


@settings(max_examples=300, deadline=None)
@given(st.lists(logs(), min_size=1, max_size=8))
def test_python_and_lua_write_the_same_bytes_and_read_every_format(
    client: redis.Redis, cases: list[tuple[str, tuple[int, ...]]]
) -> None:
    args: list[str] = ["codec"]
    for algorithm, state in cases:
        for raw in (encode_state(algorithm, state), encode_text(algorithm, state)):
            assert all(ord(c) < 128 for c in raw)
            assert decode_state(algorithm, raw) == state
            args += [CODES[algorithm], _csv(state), raw]
    got = client.eval(HARNESS, 0, *args)
    for i, (algorithm, state) in enumerate(cases):
        binary, from_binary, _, from_text = got[4 * i : 4 * i + 4]  # type: ignore[index]
        assert binary == encode_state(algorithm, state)
        assert from_binary == from_text == _csv(state)


def test_a_log_whose_text_fits_the_listpack_size_is_stored_within_it() -> None:
    # One wide gap widens every delta: the text of 24 entries fits 64 bytes, so it is kept.
    state = [1_795_622_684_053, 1]
    for i in range(23):
        state += (state[-2] + (20_000 if i == 11 else 3), 1)
    text = encode_text("sliding_window", tuple(state))
    assert len(text) <= 64 and encode_state("sliding_window", tuple(state)) == text
    # A busy minute of Zylo basic (10 requests, 6 s apart): 26 bytes where the text takes 44.
    minute = tuple(x for i in range(10) for x in (1_795_622_684_053 + 6_000 * i, 1))
    assert len(encode_state("sliding_window", minute)) == 26
    assert len(encode_text("sliding_window", minute)) == 44


@st.composite
def window_runs(draw: st.DrawFn) -> tuple[str, tuple[int, ...], list[tuple[int, int]]]:
    """A sliding window's first log (from a random run of the Python algorithm) and steps."""
    limit = draw(st.integers(1, 40) | st.just(MAX_SAFE))
    window = draw(st.sampled_from([1, 5, 60, 1_000, 16_384, 60_000, 3_600_000]))
    params = (limit, window, draw(st.integers(1, 6) | st.just(32)))
    now = draw(st.sampled_from([0, 1_000, 1_795_622_684_053]))
    gap = st.sampled_from([0, 0, 1, 2, -1, 3, window // 4, window, 127, 128, 20_000])
    cost = st.sampled_from([0, 1, 1, 1, 2, 3, 130, limit, limit + 1])
    state: tuple[int, ...] = ()
    for _ in range(draw(st.integers(1, 40))):
        now = max(0, now + draw(gap))
        new, out = STEPS["sliding_window"].acquire(state, now, params, draw(cost))
        state = new if out.allowed else state
    steps = []
    for _ in range(draw(st.integers(1, 40))):
        now = max(0, now + draw(gap))
        steps.append((now, draw(cost)))
    return _csv(params), state, steps


@settings(max_examples=400, deadline=None)
@given(st.lists(window_runs(), min_size=4, max_size=4))
def test_the_window_on_stored_bytes_matches_the_general_path(
    client: redis.Redis, runs: list[tuple[str, tuple[int, ...], list[tuple[int, int]]]]
) -> None:
    for params, state, steps in runs:
        if not state:
            continue
        raw = encode_state("sliding_window", state)
        args = ["window", raw, params, *(str(x) for s in steps for x in s)]
        got = client.eval(HARNESS, 0, *args)
        for i, (now, cost) in enumerate(steps):
            mine, general, stored = got[3 * i : 3 * i + 3]  # type: ignore[index]
            if mine != "nil":
                assert mine == general, (params, now, cost)
            # the log the next step reads (the fast path's bytes, else the general encoding)
            state = tuple(int(x) for x in general.split("|")[0].split(",") if x)
            assert decode_state("sliding_window", stored) == state, (params, now, cost)


def test_the_window_on_stored_bytes_serves_the_common_shapes(client: redis.Redis) -> None:
    """A busy minute (10 requests), a full log merging (precision 32, amounts past 127), a
    denial and a request charging nothing take the fast path; a log that every entry left, an
    amount that needs a digit where there were none, fall back to the general path."""
    busy = tuple(x for i in range(10) for x in (1_000_000 + 6_000 * i, 1))
    full = tuple(x for i in range(32) for x in (1_000_000 + 1_900 * i, 100 + i))
    merging = [(1_060_100 + k, 1) for k in range(40)]
    cases = [
        (busy, "10,60000,32", [(1_060_000, 1), (1_060_001, 1)], [True, True]),  # then denied
        (busy, "1000000,60000,32", [(1_070_000, 1), (1_070_001, 2)], [True, False]),
        (full, "1000000,60000,32", merging, [True] * 40),
        (full, "1000000,60000,32", [(1_060_000, 0)], [True]),
        (busy, "10,60000,32", [(2_000_000, 1)], [False]),
    ]
    for state, params, steps, fast in cases:
        args = ["window", encode_state("sliding_window", state), params]
        got = client.eval(HARNESS, 0, *args, *(str(x) for s in steps for x in s))
        mine, general = got[0::3], got[1::3]  # type: ignore[index]
        assert [m != "nil" for m in mine] == fast, (params, mine)
        assert all(m == g for m, g in zip(mine, general, strict=True) if m != "nil")


def _to_text(backend: RedisBackend) -> int:
    """Rewrite every state the backend stores in the old text format; how many were logs."""
    client = backend.client
    logs = 0
    for key in client.scan_iter(match=f"{backend.layout.prefix}:*", count=1000):
        if backend.layout.is_record(key):
            continue
        for name, raw in client.hgetall(key).items():
            algorithm = ALGORITHMS[name.split("/")[0]]
            text = encode_text(algorithm, decode_state(algorithm, raw))
            logs += CODES[algorithm] in "sch"
            client.hset(key, name, text)
    return logs


_prefixes = itertools.count()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(step, min_size=1, max_size=30), st.lists(step, min_size=1, max_size=30))
def test_states_in_the_old_text_format_decide_on(
    client: redis.Redis, before: list[tuple[Any, ...]], after: list[tuple[Any, ...]]
) -> None:
    """Half a run, every stored state rewritten as earlier versions wrote it, the other half:
    the same results and states as the memory engine, and the logs written since are binary."""
    backend = RedisBackend(client, prefix=f"old{next(_prefixes)}")
    memory = MemoryBackend()
    results = {}
    for name, engine in (("memory", memory), ("redis", backend)):
        clock = FakeClock()
        lim = quota.Limiter(CATALOG, engine, clock=clock)
        first = play(lim, clock, before)
        if engine is backend:
            _to_text(backend)
        results[name] = (first, play(lim, clock, after))
    assert results["redis"] == results["memory"]
    stored = backend.dump(ALGORITHMS)
    reference = memory.dump()
    assert {k: stored[k] for k in reference} == reference


def test_old_text_states_turn_binary_when_written(client: redis.Redis) -> None:
    backend = RedisBackend(client, prefix=f"old{next(_prefixes)}")
    clock = FakeClock()
    lim = quota.Limiter(CATALOG, backend, clock=clock)
    who = quota.Principal(account="acct-T", plan="a", key="sk-1", groups={"org": "org-t"})
    assert lim.acquire(who, {"requests": 1, "tokens": 10}).allowed  # "conc": one lease of 2
    clock.advance_ms(700)
    assert _to_text(backend) >= 2  # rpm, conc and the usage history at least
    before = {s.name: s.remaining for s in lim.peek(who)}
    assert lim.acquire(who, {"requests": 1, "tokens": 10}).allowed
    after = {s.name: s.remaining for s in lim.peek(who)}
    assert after["rpm"] == before["rpm"] - 1 and after["tpm"] == before["tpm"] - 10
    slot = next(slot for slot, name in backend.dump(ALGORITHMS) if name == "rpm")
    assert ord(client.hget(backend.layout.states(slot), "rpm")[0]) < 17  # written again: binary
