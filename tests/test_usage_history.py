"""Usage history: the pure algorithm, then ``limiter.usage()`` after scripted days of traffic on
every Zylo plan and on Zyla, on memory, a real Redis and a real Cluster, compared with the
decisions that were made; its Redis layout, memory and round trips.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from conftest import START, FakeClock, storage_url
from servers import redis_server
from test_redis_ops import admin, sent
from usage_day import PLANS, ZYLO, Ledger, chat, play_day, used

import quota
from quota.algorithms import ALGORITHMS, MAX_SAFE, History
from quota.history import meters_of
from quota.keys import DEFAULT_SECRET, account_slot

DAY = 86_400_000
METERS = meters_of(ZYLO)


def date(offset_days: int = 0) -> str:
    return (START.date() + dt.timedelta(days=offset_days)).isoformat()


# -- the pure algorithm ---------------------------------------------------------------------


def p(day: int, kept: int = 3) -> tuple[int, int, int]:
    """Params of day ``day`` (ms-sized days of 10 ms, to keep numbers small)."""
    return (day * 10, day * 10 + 10, (day - kept + 1) * 10)


def test_history_adds_to_today_and_never_denies() -> None:
    h = History()
    state, out = h.acquire((), 3, p(0), 5)
    assert state == (0, 5) and out.allowed and out.remaining == 5 and out.anchor == 0
    state, out = h.acquire(state, 4, p(0), MAX_SAFE)
    assert state == (0, MAX_SAFE) and out.allowed  # saturates, never denies
    state, out = h.acquire((0, 5), 12, p(1), 2)
    assert state == (0, 5, 10, 2) and out.remaining == 2 and out.anchor == 10
    assert h.acquire(state, 12, p(1), 0) == (state, out._replace(remaining=2))


def test_history_prunes_days_older_than_kept() -> None:
    h = History()
    state: tuple[int, ...] = ()
    for day in range(5):
        state, _ = h.acquire(state, day * 10, p(day), day + 1)
    assert state == (20, 3, 30, 4, 40, 5)  # three days kept
    assert h.acquire(state, 70, p(7), 0)[0] == ()
    # A clock a little behind (yesterday's params) slots its day in order.
    assert h.acquire((20, 3, 40, 5), 35, p(3), 1)[0] == (20, 3, 30, 1, 40, 5)


def test_history_settle_adjusts_the_day_of_the_charge() -> None:
    h = History()
    state = (20, 3, 30, 4, 40, 5)
    assert h.settle(state, 45, p(4), 30, 4, 10) == (20, 3, 30, 10, 40, 5)
    assert h.settle(state, 45, p(4), 30, 4, 0) == (20, 3, 40, 5)  # release removes it
    assert h.settle(state, 45, p(4), 30, 9, 0) == (20, 3, 40, 5)  # never below 0
    assert h.settle(state, 45, p(4), 10, 2, 7) == (10, 5, 20, 3, 30, 4, 40, 5)
    assert h.settle(state, 45, p(4), 10, 2, 0) == state  # nothing to refund
    assert h.settle((0, MAX_SAFE - 1), 5, p(0), 0, 1, 9) == (0, MAX_SAFE)


def test_history_expires_after_its_newest_day_leaves() -> None:
    h = History()
    assert h.expiry((), p(4)) == 0
    # The newest day (40) leaves when day 43 starts (3 kept); one more day of DST margin.
    assert h.expiry((20, 3, 40, 5), p(4)) == 40 + 30 + 10
    assert ALGORITHMS["history"] is not None


# -- the catalog setting --------------------------------------------------------------------


def test_history_is_off_unless_the_catalog_sets_it(clock: FakeClock) -> None:
    data = ZYLO.model_dump(exclude={"usage"})
    plain = quota.Catalog.load(data)
    assert plain.usage.history_days == 0 and ZYLO.usage.history_days == 31
    lim = quota.Limiter(plain, clock=clock)
    who = quota.Principal(account="a", plan="go")
    assert lim.acquire(who, {"requests": 1}).allowed
    assert not any(f.startswith("@") for _, f in lim.backend.dump())  # type: ignore[attr-defined]
    with pytest.raises(quota.ConfigError, match="history_days"):
        lim.usage(who)


def test_bad_history_settings_are_named() -> None:
    with pytest.raises(quota.CatalogError, match="history_days"):
        quota.Catalog.load({**ZYLO.model_dump(), "usage": {"history_days": -1}})
    with pytest.raises(quota.CatalogError, match="history_dayz"):
        quota.Catalog.load({**ZYLO.model_dump(), "usage": {"history_dayz": 3}})
    bad = {"meter": "requests", "algorithm": "history", "name": "h", "rate": "1/day"}
    with pytest.raises(quota.CatalogError, match="not a plan limit"):
        quota.Catalog.load({"plans": {"x": {"limits": [bad]}}})


def test_usage_days_must_be_kept(clock: FakeClock) -> None:
    lim = quota.Limiter(ZYLO, clock=clock)
    who = quota.Principal(account="a", plan="basic")
    for days in (0, 32, "7", True):
        with pytest.raises(quota.ConfigError, match="days must be"):
            lim.usage(who, days=days)  # type: ignore[arg-type]
    assert len(lim.usage(who, days=31)) == 31


# -- a scripted day on every Zylo plan, on every engine --------------------------------------


@pytest.fixture
def limiter(clock: FakeClock, storage: str) -> Iterator[quota.Limiter]:
    with quota.Limiter(ZYLO, storage, clock=clock) as lim:
        yield lim


@pytest.mark.parametrize("plan", PLANS)
def test_usage_after_a_day_on_each_zylo_plan(
    limiter: quota.Limiter, clock: FakeClock, plan: str
) -> None:
    who = quota.Principal(account=f"acct_{plan}", plan=plan, key=f"sk-{plan}")
    ledger = Ledger(ZYLO)
    play_day(limiter, clock, plan, who, ledger)  # day 0
    clock.advance(86_400)
    play_day(limiter, clock, plan, who, ledger)  # day 2 (day 1 idle)
    assert ledger.denied >= 4 and ledger.released >= 6 and ledger.admitted >= 30

    got = limiter.usage(who, days=5)  # the script ends at day 3's midnight
    assert list(got) == [date(-1), date(0), date(1), date(2), date(3)]
    assert got[date(0)] == ledger.totals(date(0), METERS)
    assert got[date(2)] == ledger.totals(date(2), METERS)
    zero = dict.fromkeys(METERS, 0)
    assert got[date(-1)] == got[date(1)] == got[date(3)] == zero
    # Really used: tool calls, tokens and credits as settled, denied and released calls not.
    day = got[date(0)]
    assert day["web_extract"] == 10 and day["requests"] >= 30
    if plan != "basic":
        assert day["search"] == 10 and day["credits"] > 0
    if plan in ("pro", "mega", "enterprise"):
        assert day["code_execution"] == 20
    # The history is not a limit: no state, no header, no peek, and reset keeps it.
    d = limiter.acquire(who, chat(plan)[0], model=chat(plan)[1])
    assert d.allowed and not any(s.algorithm == "history" for s in d.states)
    assert not any("@" in k or "@" in v for k, v in d.headers().items())
    assert not any(s.algorithm == "history" for s in limiter.peek(who))
    limiter.reset(who, include_balance=True)
    after = limiter.usage(who, days=1)[date(3)]
    assert after == {**zero, **limiter.catalog.canonical(chat(plan)[0])}
    assert limiter.usage(who, days=2)[date(2)] == ledger.totals(date(2), METERS)


def test_usage_is_per_account_and_survives_key_rotation(
    limiter: quota.Limiter, clock: FakeClock
) -> None:
    a1 = quota.Principal(account="acct_rot", plan="go", key="sk-old")
    a2 = quota.Principal(account="acct_rot", plan="pro", key="sk-new")  # rotated and upgraded
    b = quota.Principal(account="acct_other", plan="go", key="sk-b")
    for who in (a1, a2, a2):
        assert limiter.acquire(who, {"requests": 1, "tokens": 100}).allowed
    assert limiter.usage(a1, days=1)[date(0)]["requests"] == 3
    assert limiter.usage(b, days=1)[date(0)]["tokens"] == 0


def test_old_days_leave_the_history(limiter: quota.Limiter, clock: FakeClock) -> None:
    who = quota.Principal(account="acct_old", plan="basic")
    for _ in range(40):
        assert limiter.acquire(who, {"requests": 1, "tokens": 7}).allowed
        clock.advance(86_400)
    got = limiter.usage(who, days=31)
    assert list(got)[-1] == date(40) and got[date(40)]["requests"] == 0
    assert [v["tokens"] for v in got.values()][:-1] == [7] * 30
    stored = limiter.backend.read_states(  # type: ignore[union-attr]
        [limiter.planner.op(who, ZYLO.plan("basic"), limiter.planner.history[0], clock.ms, 0)]
    )[0]
    assert len(stored) == 2 * 31  # days 9..39: the 31 days kept when day 39 wrote


def test_days_follow_the_plans_time_zone_across_dst(clock: FakeClock, storage: str) -> None:
    """America/New_York starts DST on 2026-03-08: a 23-hour day."""
    data = ZYLO.model_dump()
    data["plans"]["basic"]["timezone"] = "America/New_York"
    catalog = quota.Catalog.load(data)
    who = quota.Principal(account="acct_ny", plan="basic")
    with quota.Limiter(catalog, storage, clock=clock) as lim:
        ny = dt.timezone(dt.timedelta(hours=-5))
        for hour in (0, 1, 12, 23):  # local standard time on March 7, then DST on March 8
            clock.set(dt.datetime(2026, 3, 7, hour, 30, tzinfo=ny))
            assert lim.acquire(who, {"requests": 1}).allowed
        clock.set(dt.datetime(2026, 3, 8, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-4))))
        assert lim.acquire(who, {"requests": 1, "tokens": 5}).allowed
        got = lim.usage(who, days=3)
    assert {k: v["requests"] for k, v in got.items()} == {
        "2026-03-06": 0,
        "2026-03-07": 4,
        "2026-03-08": 1,
    }


# -- Zyla: only successful calls count ------------------------------------------------------


def test_zyla_history_counts_successes_only(clock: FakeClock, storage: str) -> None:
    zyla = quota.Catalog.load("zyla")
    cycle = START - dt.timedelta(days=3)
    with quota.Limiter(zyla, storage, clock=clock) as lim:
        for plan in ("trial", "basic", "pro"):
            who = quota.Principal(account=f"acct_{plan}", plan=plan, cycle_start=cycle)
            ok = 0
            for i in range(80):
                d = lim.acquire(who, {"requests": 1}, request_id=f"{plan}-{i}")
                if not d.allowed:
                    continue
                if i % 3 == 0:  # the API answered 500: released
                    assert lim.release(d)
                else:
                    ok += 1
                clock.advance(30)
            assert ok == (50 if plan == "trial" else 53)  # the trial ends at 50 successes
            assert lim.usage(who, days=1)[date(0)] == {"requests": ok}


# -- AsyncLimiter ---------------------------------------------------------------------------


def test_async_usage_matches_the_sync_one(clock: FakeClock, storage: str) -> None:
    who = quota.Principal(account="acct_async", plan="pro", key="sk-a")
    cost, model = chat("pro", search=1, code=1)

    async def main() -> dict[str, dict[str, int]]:
        async with quota.AsyncLimiter(ZYLO, storage, clock=clock) as lim:
            decisions = await asyncio.gather(
                *(lim.acquire(who, cost, model=model) for _ in range(12))
            )
            # Concurrent calls may reach the store in any order: pick among the admitted.
            admitted = [d for d in decisions if d.allowed]
            assert len(admitted) == 10
            for d in admitted[:4]:
                assert await lim.settle(d, used("pro", 200))
            assert await lim.release(admitted[4])
            return await lim.usage(who, days=2)

    got = asyncio.run(main())
    est = ZYLO.canonical(cost)
    assert got[date(-1)] == dict.fromkeys(METERS, 0)
    # search (10/minute per key) denies two of the twelve; one of the ten is released
    assert got[date(0)]["requests"] == 9
    assert got[date(0)]["search"] == 9 and got[date(0)]["code_execution"] == 9
    assert got[date(0)]["tokens"] == 5 * est["tokens"] + 4 * 700


# -- Redis: layout, memory, round trips -----------------------------------------------------


def _account_keys(server: redis.Redis, prefix: str, account: str) -> dict[str, Any]:
    slot = account_slot(account, DEFAULT_SECRET)
    return {
        key: (server.object("encoding", key), int(server.memory_usage(key, samples=0) or 0))
        for key in sorted(server.scan_iter(match=f"{prefix}:{{{slot}}}*", count=1000))
    }


def test_history_lives_in_its_own_hash_with_a_ttl(
    request: pytest.FixtureRequest, redis_port: int, clock: FakeClock
) -> None:
    """A month of a pro account's history: the windowed hash stays a listpack, the history
    hash (``:h``) stops growing once 31 days are kept, and it expires after them."""
    url = storage_url(request, "redis")
    prefix = url.rpartition("prefix=")[2]
    server = admin(redis_port)
    who = quota.Principal(account="acct_month", plan="pro", key="sk-m")
    cost, model = chat("pro", search=1, code=1)
    sizes = []
    with quota.Limiter(ZYLO, url, clock=clock) as lim:
        for day in range(40):
            clock.set(START + dt.timedelta(days=day, hours=12))
            lim.top_up(who, "credits", 12_000_000)  # what the day spends
            for _ in range(8):
                d = lim.acquire(who, cost, model=model)
                assert d.allowed
                lim.settle(d, used("pro", 123_456))  # big numbers: the longest values
                clock.advance(7)
            keys = _account_keys(server, prefix, "acct_month")
            sizes.append(next(v[1] for k, v in keys.items() if k.endswith(":h")))
        assert all(enc == "listpack" for k, (enc, _) in keys.items() if not k.endswith(":h"))
        h = next(k for k in keys if k.endswith(":h"))
        meters = ["code_execution", "credits", "requests", "search", "tokens"]
        assert sorted(server.hkeys(h)) == [f"@{m}" for m in meters]
        assert 31 * 86_400_000 < server.pttl(h) <= 33 * 86_400_000
        assert max(sizes[31:]) <= sizes[30] + 64  # bounded by history_days
    print(f"\nhistory hash of a pro account: {sizes[0]} bytes after 1 day, {sizes[30]} after 31")


def test_one_round_trip_per_decision_with_history(clock: FakeClock) -> None:
    """History is written by the decision's own call: still one call per acquire (an FCALL of
    the function library) and one per settle (EVALSHA); reading a month of it is one HMGET."""
    who = quota.Principal(account="acct_rt", plan="pro", key="sk-rt")
    cost, model = chat("pro", search=1, code=1)
    with redis_server() as port:
        server = admin(port)
        with quota.Limiter(ZYLO, f"redis://127.0.0.1:{port}/0", clock=clock) as lim:
            lim.peek(who)
            lim.acquire(who, {"requests": 0})  # loads the function library

            def traffic() -> None:
                for _ in range(10):
                    d = lim.acquire(who, cost, model=model)
                    assert d.allowed
                    lim.settle(d, used("pro", 10))
                    clock.advance(7)

            names, counts = sent(server, traffic)
            assert names == ["fcall", "evalsha"] * 10
            names, _ = sent(server, lambda: lim.usage(who))
            assert names == ["hmget"]
            assert lim.usage(who, days=1)[date(0)]["requests"] == 10
    assert counts["hset"] >= 20  # the script wrote the history with the limits
