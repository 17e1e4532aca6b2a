"""A concurrency limit cannot leak: a crashed worker's slots come back when their leases end.

Runs on every engine (memory, a real Redis, a real Cluster) with an injected clock: nothing
sleeps. Settle and release free a slot at once; the N+1st request is denied with a retry-after
equal to the earliest lease's expiry.
"""

from __future__ import annotations

import asyncio

import pytest
from conftest import FakeClock

import quota

LEASE = 30.0
CATALOG = quota.Catalog.load(
    {
        "name": "leases",
        "meters": {"names": ["requests", "tokens"]},
        "plans": {
            "p": {
                "limits": [
                    {"name": "inflight", "meter": "requests", "algorithm": "concurrency"}
                    | {"limit": 3, "lease": "30 seconds"},
                    {"name": "tpm", "meter": "tokens", "rate": "100000/minute"},
                ]
            }
        },
    }
)


def who(n: int = 0) -> quota.Principal:
    return quota.Principal(account=f"acct_lease{n}", plan="p")


def inflight(limiter: quota.Limiter, principal: quota.Principal) -> int:
    state = {s.name: s for s in limiter.peek(principal)}["inflight"]
    return state.limit - state.remaining


def test_crashed_workers_slots_come_back_after_the_lease(storage: str, clock: FakeClock) -> None:
    with quota.Limiter(CATALOG, storage, clock=clock) as limiter:
        p = who()
        held = []
        for i in range(3):  # three workers take a slot each, one second apart, then crash
            d = limiter.acquire(p, {"requests": 1, "tokens": 10}, request_id=f"r{i}")
            assert d.allowed, d
            held.append(d)
            clock.advance(1)
        assert inflight(limiter, p) == 3
        clock.advance(2)  # t = 5 s after the first lease
        denied = limiter.acquire(p, {"requests": 1})
        assert not denied.allowed and denied.denied_by == "inflight" and denied.status == 429
        assert denied.retry_after == pytest.approx(LEASE - 5, abs=1e-3)  # the earliest lease
        assert inflight(limiter, p) == 3  # a denial takes no slot
        clock.advance(LEASE - 5 - 0.001)  # one millisecond before the first lease ends
        assert not limiter.acquire(p, {"requests": 1}).allowed
        clock.advance(0.001)
        assert inflight(limiter, p) == 2
        again = limiter.acquire(p, {"requests": 1}, request_id="r3")
        assert again.allowed
        assert inflight(limiter, p) == 3
        limiter.settle(held[0], {"tokens": 5})  # a late settle of an ended lease
        assert inflight(limiter, p) == 3  # frees nobody else's slot
        clock.advance(LEASE)  # every lease of the crashed workers has ended
        assert inflight(limiter, p) == 0
        assert limiter.acquire(p, {"requests": 3}).allowed


def test_settle_and_release_free_a_slot_at_once(storage: str, clock: FakeClock) -> None:
    with quota.Limiter(CATALOG, storage, clock=clock) as limiter:
        p = who(1)
        with_id = limiter.acquire(p, {"requests": 1}, request_id="a")
        without_id = limiter.acquire(p, {"requests": 1})
        third = limiter.acquire(p, {"requests": 1, "tokens": 50}, request_id="c")
        assert with_id.allowed and without_id.allowed and third.allowed
        assert not limiter.acquire(p, {"requests": 1}).allowed
        assert limiter.release(with_id)
        assert inflight(limiter, p) == 2
        assert limiter.acquire(p, {"requests": 1}).allowed  # the freed slot, at the same instant
        assert limiter.settle(without_id, {"tokens": 0})
        assert limiter.settle("c", {"tokens": 20}, who=p)  # settling by request id frees it too
        assert inflight(limiter, p) == 1
        assert not limiter.release(with_id)  # a second release frees nothing more
        assert inflight(limiter, p) == 1


def test_async_limiter_leases(storage: str, clock: FakeClock) -> None:
    async def main() -> None:
        async with quota.AsyncLimiter(CATALOG, storage, clock=clock) as limiter:
            p = who(2)
            got = await asyncio.gather(*(limiter.acquire(p, {"requests": 1}) for _ in range(5)))
            assert sum(d.allowed for d in got) == 3
            assert all(d.retry_after == pytest.approx(LEASE) for d in got if not d.allowed)
            clock.advance(LEASE)  # leases at one instant start 1 ms apart (unique starts)
            assert (await limiter.acquire(p, {"requests": 1})).allowed
            assert not (await limiter.acquire(p, {"requests": 1})).allowed
            clock.advance(0.002)
            assert (await limiter.acquire(p, {"requests": 2})).allowed

    asyncio.run(main())
