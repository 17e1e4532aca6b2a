"""Waiting instead of failing: ``acquire(..., wait=seconds)`` sleeps a denial's exact
``retry_after`` and tries again while that fits in ``wait``; never past it, never for a denial
that cannot succeed. Time moves only through the injected sleep, which advances the injected
clock (memory and a real redis-server)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from conftest import FakeClock, storage_url
from servers import free_port

import quota
from quota.backends.breaker import Breaker

CATALOG = quota.Catalog.load(
    {
        "name": "wait",
        "meters": {"names": ["requests", "tokens", "credits"]},
        "plans": {
            "p": {
                "limits": [
                    {"name": "rpm", "meter": "requests", "rate": "2/minute"},
                    {"name": "tpm", "meter": "tokens", "rate": "1000/minute"},
                    {"name": "credits", "meter": "credits", "algorithm": "balance", "grant": 10},
                ]
            }
        },
    }
)
WHO = quota.Principal(account="acct", plan="p")


class Sleeper:
    """A sleep that records what it was asked and moves the clock by as much (``move``
    False: the clock stays, as a wrong clock would); ``then(sleeper)`` runs after each sleep."""

    def __init__(
        self, clock: FakeClock, move: bool = True, then: Callable[[Sleeper], None] | None = None
    ) -> None:
        self.clock, self.move, self.then = clock, move, then
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.move:
            self.clock.advance(seconds)
        if self.then is not None:
            self.then(self)


@pytest.fixture(params=["memory", "redis"])
def url(request: pytest.FixtureRequest) -> str:
    return storage_url(request, request.param)


def full(url: str, clock: FakeClock, sleeper: Sleeper | None = None) -> quota.Limiter:
    """A limiter whose ``rpm`` took requests at t=0 and t=10 s; the clock left at t=20 s."""
    limiter = quota.Limiter(CATALOG, url, clock=clock, sleep=sleeper)
    fill(limiter, WHO, clock)
    return limiter


def fill(limiter: quota.Limiter, who: quota.Principal, clock: FakeClock) -> None:
    """Requests of ``who`` at now and now + 10 s, then 10 s more: its ``rpm`` is full."""
    for _ in range(2):
        assert limiter.acquire(who, {"requests": 1}).allowed
        clock.advance(10)


def test_waits_the_exact_retry_after_then_is_admitted(url: str, clock: FakeClock) -> None:
    sleeper = Sleeper(clock)
    limiter = full(url, clock, sleeper)
    denial = limiter.acquire(WHO, {"requests": 1})
    assert not denial.allowed and denial.retry_after == 40.0  # t=0 leaves the minute at 60
    d = limiter.acquire(WHO, {"requests": 1}, request_id="job-1", wait=40)
    assert d.allowed and sleeper.slept == [denial.retry_after]
    assert d.now == denial.now + 40 and d.request_id == "job-1"
    replay = limiter.acquire(WHO, {"requests": 1}, request_id="job-1", wait=40)
    assert replay.replayed and sleeper.slept == [40.0]  # idempotent: a replay never waits
    limiter.close()


def test_a_retry_after_beyond_wait_is_answered_at_once(url: str, clock: FakeClock) -> None:
    sleeper = Sleeper(clock)
    limiter = full(url, clock, sleeper)
    before = clock.ms
    for wait in (0, 0.5, 39.999):
        d = limiter.acquire(WHO, {"requests": 1}, wait=wait)
        assert not d.allowed and d.retry_after == 40.0 and d.denied_by == "rpm"
    assert sleeper.slept == [] and clock.ms == before
    limiter.close()


def test_a_competitor_taking_the_slot_means_another_exact_wait(url: str, clock: FakeClock) -> None:
    limiter = quota.Limiter(CATALOG, url, clock=clock)
    for wait, account in ((50, "a"), (49.999, "b")):
        who = quota.Principal(account=account, plan="p")

        def competitor(sleeper: Sleeper, who: quota.Principal = who) -> None:
            if len(sleeper.slept) == 1:  # another client takes the slot that came free
                assert limiter.acquire(who, {"requests": 1}).allowed

        sleeper = Sleeper(clock, then=competitor)
        limiter.sleep = sleeper
        fill(limiter, who, clock)
        d = limiter.acquire(who, {"requests": 1}, request_id=f"job-{account}", wait=wait)
        if wait == 50:  # the t=10 request leaves at 70: a second wait, exact again
            assert d.allowed and sleeper.slept == [40.0, 10.0]
        else:  # 40 fits, 40 + 10 does not
            assert not d.allowed and d.retry_after == 10.0 and sleeper.slept == [40.0]
    limiter.close()


def test_a_clock_that_sleeping_does_not_move_still_bounds_the_wait(
    url: str, clock: FakeClock
) -> None:
    sleeper = Sleeper(clock, move=False)
    limiter = full(url, clock, sleeper)
    d = limiter.acquire(WHO, {"requests": 1}, wait=100)
    assert not d.allowed and sleeper.slept == [40.0, 40.0]  # 80 s slept; a third would pass 100
    limiter.close()


def test_denials_that_cannot_succeed_never_sleep(url: str, clock: FakeClock) -> None:
    sleeper = Sleeper(clock)
    limiter = quota.Limiter(CATALOG, url, clock=clock, sleep=sleeper)
    too_big = limiter.acquire(WHO, {"tokens": 1001}, wait=3600)
    assert not too_big.allowed and too_big.retry_after is None  # above the capacity
    broke = limiter.acquire(WHO, {"credits": 11}, wait=3600)
    assert broke.status == 402
    zylo = quota.Limiter("zylo", url, clock=clock, sleep=sleeper)
    basic = quota.Principal(account="acct-basic", plan="basic")
    forbidden = zylo.acquire(basic, {"requests": 1}, model="gpt-5.5", wait=3600)
    assert forbidden.status == 403 and forbidden.denied_by == "model"
    assert sleeper.slept == []
    limiter.close()
    zylo.close()


def test_a_failure_policy_denial_never_sleeps(clock: FakeClock) -> None:
    sleeper = Sleeper(clock)
    dead = f"redis://127.0.0.1:{free_port()}/0"
    breaker = Breaker(clock=FakeClock(0))
    limiter = quota.Limiter(
        CATALOG, dead, clock=clock, on_error="deny", breaker=breaker, sleep=sleeper
    )
    d = limiter.acquire(WHO, {"requests": 1}, wait=60)
    assert d.status == 503 and d.source == "deny" and d.retry_after == 1.0
    assert sleeper.slept == []
    limiter.close()


def test_wait_must_be_a_non_negative_number(clock: FakeClock) -> None:
    limiter = quota.Limiter(CATALOG, "memory://", clock=clock, sleep=Sleeper(clock))
    for bad in (-1, -0.001, True, "5", float("nan"), float("inf")):
        with pytest.raises(quota.CostError, match="wait must be"):
            limiter.acquire(WHO, {"requests": 1}, wait=bad)  # type: ignore[arg-type]
    with pytest.raises(quota.ConfigError, match="sleep must be"):
        quota.Limiter(CATALOG, "memory://", sleep=5)  # type: ignore[arg-type]
    assert limiter.acquire(WHO, {"requests": 1}, wait=0).allowed


def test_the_async_limiter_waits_the_same_way(url: str, clock: FakeClock) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    async def run() -> None:
        async with quota.AsyncLimiter(CATALOG, url, clock=clock, sleep=sleep) as limiter:
            for _ in range(2):
                assert (await limiter.acquire(WHO, {"requests": 1})).allowed
                clock.advance(10)
            assert not (await limiter.acquire(WHO, {"requests": 1}, wait=39)).allowed
            assert slept == []
            d = await limiter.acquire(WHO, {"requests": 1}, request_id="job-2", wait=40)
            assert d.allowed and slept == [40.0] and d.request_id == "job-2"
            broke = await limiter.acquire(WHO, {"credits": 11}, wait=3600)
            assert broke.status == 402 and slept == [40.0]

    asyncio.run(run())


def test_the_async_limiter_takes_a_plain_sleep_too(clock: FakeClock) -> None:
    sleeper = Sleeper(clock)

    async def run() -> quota.Decision:
        limiter = quota.AsyncLimiter(CATALOG, "memory://", clock=clock, sleep=sleeper)
        for _ in range(2):
            await limiter.acquire(WHO, {"requests": 1})
        return await limiter.acquire(WHO, {"requests": 1}, wait=60)

    assert asyncio.run(run()).allowed and sleeper.slept == [60.0]
