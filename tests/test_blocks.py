"""The block cache (denied again in-process, no round trip) and shadow mode (report, never deny)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import quota
from tests.conftest import FakeClock

CATALOG = {
    "plans": {
        "free": {
            "limits": [
                {"name": "rpm", "meter": "requests", "rate": "10/minute"},
                {"name": "tpd", "meter": "tokens", "rate": "1000/day", "algorithm": "calendar"},
            ]
        },
        "paid": {
            "limits": [
                {"name": "rpm", "meter": "requests", "rate": "20/minute"},
                {"name": "tpd", "meter": "tokens", "rate": "2000/day", "algorithm": "calendar"},
            ]
        },
        "dark": {
            "limits": [
                {"name": "rpm", "meter": "requests", "rate": "100/minute"},
                {"name": "new_rpm", "meter": "requests", "rate": "2/minute", "shadow": True},
            ]
        },
    }
}


def evalsha_calls(server: redis.Redis) -> int:
    """The engine's calls: scripts (EVALSHA) and the function library (FCALL, acquires)."""
    stats = server.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "fcall"))


@pytest.fixture
def server(redis_port: int) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_port)
    client.flushall()
    yield client
    client.close()


def limiter(port: int, clock: FakeClock, **options: Any) -> quota.Limiter:
    return quota.Limiter(
        quota.Catalog.load(CATALOG), f"redis://127.0.0.1:{port}/0", clock=clock, **options
    )


def spend_minute(lim: quota.Limiter, who: quota.Principal, clock: FakeClock) -> None:
    """Ten requests, one a second: the 11th at t+10 s waits until the first leaves (t+60 s)."""
    for _ in range(10):
        assert lim.acquire(who, {"requests": 1}).allowed
        clock.advance(1)


def test_a_blocked_client_costs_no_round_trip_until_its_exact_retry_after(
    redis_port: int, server: redis.Redis, clock: FakeClock
) -> None:
    lim = limiter(redis_port, clock)
    who = quota.Principal(account="a", plan="free")
    t0 = clock.ms
    spend_minute(lim, who, clock)
    first = lim.acquire(who, {"requests": 1})
    assert not first.allowed and first.source == "engine" and first.retry_after == 50.0
    before = evalsha_calls(server)
    answered = 0
    while clock.ms + 100 < t0 + 60_000:
        clock.advance_ms(100)
        d = lim.acquire(who, {"requests": 1})
        answered += 1
        assert not d.allowed and d.source == "cache" and d.denied_by == "rpm"
        assert d.retry_after == (t0 + 60_000 - clock.ms) / 1000  # counts down to the ms
        assert d.status == 429 and d.headers()["Retry-After"]
    assert evalsha_calls(server) == before  # not one command while blocked
    assert lim.blocks is not None and lim.blocks.hits == answered == 499
    # The strict window frees the first request's slot at t0+60 s, not at the window's end.
    clock.ms = t0 + 60_000
    d = lim.acquire(who, {"requests": 1})
    assert d.allowed and d.source == "engine"
    assert evalsha_calls(server) == before + 1


def test_a_smaller_cost_a_new_window_or_a_new_plan_asks_the_store(
    redis_port: int, server: redis.Redis, clock: FakeClock
) -> None:
    lim = limiter(redis_port, clock)
    who = quota.Principal(account="b", plan="free")
    assert lim.acquire(who, {"requests": 1, "tokens": 900}).allowed
    denied = lim.acquire(who, {"requests": 1, "tokens": 200})
    assert not denied.allowed and denied.denied_by == "tpd"
    assert lim.acquire(who, {"requests": 1, "tokens": 300}).source == "cache"  # larger: denied
    small = lim.acquire(who, {"requests": 1, "tokens": 100})  # smaller: may fit, so ask
    assert small.allowed and small.source == "engine"
    never = lim.acquire(who, {"requests": 1, "tokens": 5000})  # above capacity: never
    assert never.source == "engine" and never.retry_after is None
    upgraded = quota.Principal(account="b", plan="paid")
    assert lim.acquire(upgraded, {"requests": 1, "tokens": 200}).source == "engine"


def test_refunds_in_this_process_forget_the_block(
    redis_port: int, server: redis.Redis, clock: FakeClock
) -> None:
    lim = limiter(redis_port, clock)
    who = quota.Principal(account="c", plan="free")
    first = lim.acquire(who, {"requests": 1})
    for _ in range(9):
        lim.acquire(who, {"requests": 1})
    assert not lim.acquire(who, {"requests": 1}).allowed
    assert lim.acquire(who, {"requests": 1}).source == "cache"
    assert lim.release(first)  # one request is returned
    d = lim.acquire(who, {"requests": 1})
    assert d.allowed and d.source == "engine"
    assert not lim.acquire(who, {"requests": 1}).allowed
    lim.reset(who)
    assert lim.acquire(who, {"requests": 1}).allowed


def test_another_process_refund_is_seen_when_the_block_expires(
    redis_port: int, server: redis.Redis, clock: FakeClock
) -> None:
    """The documented bound: the cache may under-admit until its entry expires, never over."""
    here, there = limiter(redis_port, clock), limiter(redis_port, clock)
    who = quota.Principal(account="d", plan="free")
    first = there.acquire(who, {"requests": 1})
    for _ in range(9):
        there.acquire(who, {"requests": 1})
    d = here.acquire(who, {"requests": 1})
    assert not d.allowed and d.retry_after == 60.0
    assert there.release(first)
    assert here.acquire(who, {"requests": 1}).source == "cache"  # stale, conservative
    assert there.acquire(who, {"requests": 1}).allowed  # the other process takes the slot
    clock.advance(60)
    assert here.acquire(who, {"requests": 1}).source == "engine"


def test_request_ids_and_a_disabled_cache_always_ask_the_store(
    redis_port: int, server: redis.Redis, clock: FakeClock
) -> None:
    for lim, rid in (
        (limiter(redis_port, clock), "r"),
        (limiter(redis_port, clock, block_cache=False), None),
    ):
        who = quota.Principal(account=f"e{rid}", plan="free")
        spend_minute(lim, who, clock)
        for i in range(3):
            d = lim.acquire(who, {"requests": 1}, request_id=None if rid is None else f"r{i}")
            assert not d.allowed and d.source == "engine"


def test_the_memory_engine_caches_too(clock: FakeClock) -> None:
    lim = quota.Limiter(quota.Catalog.load(CATALOG), "memory://", clock=clock)
    who = quota.Principal(account="f", plan="free")
    spend_minute(lim, who, clock)
    assert lim.acquire(who, {"requests": 1}).source == "engine"
    assert lim.acquire(who, {"requests": 1}).source == "cache"


def test_a_shadow_limit_reports_and_never_denies(clock: FakeClock) -> None:
    lim = quota.Limiter(quota.Catalog.load(CATALOG), "memory://", clock=clock)
    who = quota.Principal(account="g", plan="dark")
    for _ in range(2):
        d = lim.acquire(who, {"requests": 1})
        assert d.allowed and d.shadow_denied == ()
    for _ in range(3):
        d = lim.acquire(who, {"requests": 1})
        assert d.allowed and d.shadow_denied == ("new_rpm",)  # would have denied; admitted
        assert d.source == "engine"
    # The enforced limit counted all five; the shadow limit only what it admitted.
    left = {s.name: s.remaining for s in lim.peek(who)}
    assert left == {"rpm": 95, "new_rpm": 0}
    assert lim.release(d)
    assert {s.name: s.remaining for s in lim.peek(who)}["rpm"] == 96


def test_shadow_mode_for_the_whole_limiter_charges_nothing_it_would_deny(
    clock: FakeClock,
) -> None:
    lim = quota.Limiter(quota.Catalog.load(CATALOG), "memory://", clock=clock, shadow=True)
    who = quota.Principal(account="h", plan="free")
    spend_minute(lim, who, clock)
    d = lim.acquire(who, {"requests": 1})
    assert d.allowed and d.status == 200 and d.shadow_denied == ("rpm",)
    assert d.state("rpm").remaining == 0 and not d.state("rpm").allowed
    assert not lim.release(d)  # nothing was charged
    assert lim.acquire(who, {"requests": 1}).source == "engine"  # never cached in shadow


class Seen:
    def __init__(self) -> None:
        self.sources: list[str] = []

    def decision(self, decision: quota.Decision, plan: str, seconds: float) -> None:
        self.sources.append(decision.source)

    def backend_call(self, operation: str, seconds: float, ok: bool) -> None:
        pass


def test_the_observer_sees_cache_answers(clock: FakeClock) -> None:
    seen = Seen()
    lim = quota.Limiter(quota.Catalog.load(CATALOG), "memory://", clock=clock, observer=seen)
    who = quota.Principal(account="i", plan="free")
    spend_minute(lim, who, clock)
    lim.acquire(who, {"requests": 1})
    lim.acquire(who, {"requests": 1})
    assert seen.sources == ["engine"] * 11 + ["cache"]


def test_the_async_limiter_caches_too(redis_port: int, server: redis.Redis) -> None:
    asyncio.run(async_cache(redis_port, server))


async def async_cache(redis_port: int, server: redis.Redis) -> None:
    clock = FakeClock()
    cat = quota.Catalog.load(CATALOG)
    async with quota.AsyncLimiter(cat, f"redis://127.0.0.1:{redis_port}/0", clock=clock) as lim:
        who = quota.Principal(account="j", plan="free")
        for _ in range(10):
            assert (await lim.acquire(who, {"requests": 1})).allowed
        assert (await lim.acquire(who, {"requests": 1})).source == "engine"
        before = evalsha_calls(server)
        assert (await lim.acquire(who, {"requests": 1})).source == "cache"
        assert evalsha_calls(server) == before
