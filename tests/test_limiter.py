"""The plain API independent of any product: every algorithm through a small dict catalog,
AsyncLimiter parity, context managers, peek/reset, reservations, threads."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from conftest import START, FakeClock

import quota
from quota.backends.memory import AsyncMemoryBackend, MemoryBackend

CUSTOM: dict[str, Any] = {
    "name": "custom",
    "meters": {"names": ["requests", "inflight", "credits", "tokens"]},
    "plans": {
        "bucket": {
            "limits": [
                {
                    "name": "tb",
                    "meter": "requests",
                    "algorithm": "token_bucket",
                    "rate": "10/minute",
                    "burst": 5,
                }
            ]
        },
        "fixed": {
            "limits": [
                {"name": "fw", "meter": "requests", "algorithm": "fixed_window", "rate": "5/minute"}
            ]
        },
        "fixed_offset": {
            "limits": [
                {
                    "name": "fw30",
                    "meter": "requests",
                    "algorithm": "fixed_window",
                    "rate": "5/minute",
                    "offset": 30,
                }
            ]
        },
        "conc": {
            "limits": [
                {
                    "name": "inflight",
                    "meter": "inflight",
                    "algorithm": "concurrency",
                    "limit": 2,
                    "lease": 30,
                }
            ]
        },
        "shared": {
            "limits": [
                {"name": "platform", "meter": "requests", "rate": "3/minute", "scope": "global"},
                {"name": "per_acct", "meter": "requests", "rate": "2/minute"},
            ]
        },
        "wallet": {
            "limits": [
                {"name": "rpm", "meter": "requests", "rate": "100/minute"},
                {"name": "wallet", "meter": "credits", "algorithm": "balance", "grant": 1000},
            ]
        },
        "coarse": {
            "limits": [
                {"name": "coarse", "meter": "tokens", "rate": "100/minute", "precision": 4},
            ]
        },
        "new_york": {
            "timezone": "America/New_York",
            "limits": [
                {"name": "daily", "meter": "requests", "algorithm": "calendar", "rate": "3/day"},
            ],
        },
    },
}


@pytest.fixture(scope="module")
def custom() -> quota.Catalog:
    return quota.Catalog.load(CUSTOM)


@pytest.fixture
def limiter(custom: quota.Catalog, clock: FakeClock, storage: str) -> Iterator[quota.Limiter]:
    with quota.Limiter(custom, storage, clock=clock) as lim:
        yield lim


def P(plan: str, account: str = "acct") -> quota.Principal:
    return quota.Principal(account=account, plan=plan)


def left(lim: quota.Limiter, p: quota.Principal) -> dict[str, int]:
    return {s.name: s.remaining for s in lim.peek(p)}


# -- construction ---------------------------------------------------------------------------


def test_limiter_loads_a_builtin_catalog_by_name(clock: FakeClock) -> None:
    lim = quota.Limiter("zylo", clock=clock)
    assert lim.catalog.name == "zylo"
    d = lim.acquire(quota.Principal(account="a", plan="basic"), {"requests": 1})
    assert d.allowed and bool(d) is True


def test_bad_construction_arguments(custom: quota.Catalog) -> None:
    with pytest.raises(ValueError, match=r"unknown storage URL 'nosuch://x'.*memory://"):
        quota.Limiter(custom, "nosuch://x")
    with pytest.raises(ValueError, match="on_error must be"):
        quota.Limiter(custom, on_error="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reservation_ttl must be positive"):
        quota.Limiter(custom, reservation_ttl=0)
    with pytest.raises(quota.CatalogError, match="no catalog named 'nope'"):
        quota.Limiter("nope")


# -- context managers -----------------------------------------------------------------------


class _ClosingBackend(MemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


class _ClosingAsyncBackend(AsyncMemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


def test_limiter_is_a_context_manager(custom: quota.Catalog, clock: FakeClock) -> None:
    backend = _ClosingBackend()
    with quota.Limiter(custom, backend, clock=clock) as lim:
        assert isinstance(lim, quota.Limiter)
        assert lim.backend is backend
        assert lim.acquire(P("fixed"), {"requests": 1}).allowed
        assert backend.closed == 0
    assert backend.closed == 1


def test_async_limiter_is_an_async_context_manager(custom: quota.Catalog, clock: FakeClock) -> None:
    backend = _ClosingAsyncBackend()

    async def main() -> quota.Decision:
        async with quota.AsyncLimiter(custom, backend, clock=clock) as lim:
            assert isinstance(lim, quota.AsyncLimiter)
            d = await lim.acquire(P("fixed"), {"requests": 1})
            assert backend.closed == 0
            return d

    d = asyncio.run(main())
    assert d.allowed and d.state("fw").remaining == 4
    assert backend.closed == 1


def test_async_limiter_over_a_url(custom: quota.Catalog, clock: FakeClock) -> None:
    async def main() -> list[bool]:
        async with quota.AsyncLimiter(custom, "memory://", clock=clock) as lim:
            return [bool(await lim.acquire(P("fixed"), {"requests": 1})) for _ in range(6)]

    assert asyncio.run(main()) == [True] * 5 + [False]


# -- AsyncLimiter parity --------------------------------------------------------------------


def _script() -> list[tuple[Any, ...]]:
    basic = quota.Principal(account="a1", plan="basic", key="k1")
    go = quota.Principal(account="a2", plan="go", key="k2")
    steps: list[tuple[Any, ...]] = []
    for i in range(12):
        steps.append(("acquire", basic, {"requests": 1, "tokens": 100 * i}, f"b{i}", {}))
        steps.append(("advance", 0.75))
    steps += [
        ("settle", "b3", {"tokens": 50}),
        ("release", "b4"),
        ("release", "b4"),
        ("peek", basic),
        ("advance", 60),
        ("acquire", basic, {"requests": 1}, "b1", {}),  # replay
        ("acquire", basic, {"requests": 1}, None, {"model": "gpt-5.5"}),  # 403
        ("acquire", go, {"requests": 1, "credits": 9_999_000}, "g1", {"model": "gpt-5.5"}),
        ("settle", "g1", {"credits": 10_500_000}),
        ("acquire", go, {"requests": 1, "credits": 10}, "g2", {}),  # 402
        ("top_up", go, "credits", 2_000_000),
        ("acquire", go, {"requests": 1, "credits": 10}, "g3", {}),
    ]
    for _ in range(11):
        steps.append(("acquire", go, {"google_search": 1}, None, {"features": {"google_search"}}))
    steps += [
        ("peek", go),
        ("reset", basic),
        ("peek", basic),
        ("reset", go),
        ("peek", go),
    ]
    return steps


def _normalise(out: Any) -> Any:
    """Decisions carry random request ids when none is given: compare everything else."""
    if isinstance(out, quota.Decision):
        if out.request_id is not None and len(out.request_id) == 32:
            return (out.allowed, out.status, out.states, out.denied_by, out.retry_after, out.code)
        return out
    return out


def _run_sync(lim: quota.Limiter, clock: FakeClock) -> list[Any]:
    results: list[Any] = []
    decisions: dict[str, quota.Decision] = {}
    for step in _script():
        op = step[0]
        if op == "advance":
            clock.advance(step[1])
            continue
        if op == "acquire":
            _, who, cost, rid, kw = step
            d = lim.acquire(who, cost, request_id=rid, **kw)
            if rid is not None:
                decisions.setdefault(rid, d)
            out: Any = d
        elif op == "settle":
            out = lim.settle(decisions[step[1]], step[2])
        elif op == "release":
            out = lim.release(decisions[step[1]])
        elif op == "peek":
            out = lim.peek(step[1])
        elif op == "top_up":
            out = lim.top_up(step[1], step[2], step[3])
        else:
            out = lim.reset(step[1])
        results.append(_normalise(out))
    return results


async def _run_async(lim: quota.AsyncLimiter, clock: FakeClock) -> list[Any]:
    results: list[Any] = []
    decisions: dict[str, quota.Decision] = {}
    for step in _script():
        op = step[0]
        if op == "advance":
            clock.advance(step[1])
            continue
        if op == "acquire":
            _, who, cost, rid, kw = step
            d = await lim.acquire(who, cost, request_id=rid, **kw)
            if rid is not None:
                decisions.setdefault(rid, d)
            out: Any = d
        elif op == "settle":
            out = await lim.settle(decisions[step[1]], step[2])
        elif op == "release":
            out = await lim.release(decisions[step[1]])
        elif op == "peek":
            out = await lim.peek(step[1])
        elif op == "top_up":
            out = await lim.top_up(step[1], step[2], step[3])
        else:
            out = await lim.reset(step[1])
        results.append(_normalise(out))
    return results


def test_async_limiter_gives_the_same_results_as_limiter() -> None:
    catalog = quota.Catalog.load("zylo")
    c1, c2 = FakeClock(), FakeClock()
    sync_results = _run_sync(quota.Limiter(catalog, clock=c1), c1)
    async_results = asyncio.run(_run_async(quota.AsyncLimiter(catalog, clock=c2), c2))
    assert async_results == sync_results
    assert c1.ms == c2.ms
    # The script exercised every outcome: admits, 429, 403, 402, a replay, True/False settles.
    decisions = [r for r in sync_results if isinstance(r, quota.Decision)]
    tuples = [r for r in sync_results if isinstance(r, tuple)]
    statuses = {d.status for d in decisions} | {t[1] for t in tuples}
    assert statuses == {200, 402, 403, 429}
    assert any(d.replayed for d in decisions)
    assert True in sync_results and False in sync_results
    assert 1_500_000 in sync_results  # the top-up's new balance (-500_000 + 2_000_000)


def test_async_limiter_is_exact_under_gather(custom: quota.Catalog, clock: FakeClock) -> None:
    async def main() -> list[quota.Decision]:
        lim = quota.AsyncLimiter(custom, clock=clock)
        return await asyncio.gather(
            *(lim.acquire(P("wallet"), {"requests": 1}) for _ in range(250))
        )

    decisions = asyncio.run(main())
    assert sum(d.allowed for d in decisions) == 100


# -- token bucket ---------------------------------------------------------------------------


def test_token_bucket(limiter: quota.Limiter, clock: FakeClock) -> None:
    p = P("bucket")
    for i in range(5):
        d = limiter.acquire(p, {"requests": 1})
        assert d.allowed and d.state("tb").remaining == 4 - i
    assert d.state("tb").reset_after == 30.0  # 5 tokens at one per 6 s
    d = limiter.acquire(p, {"requests": 1})
    assert not d.allowed and d.denied_by == "tb"
    assert d.retry_after == 6.0
    assert d.state("tb").reset_after == 30.0

    clock.advance(5.999)
    d = limiter.acquire(p, {"requests": 1})
    assert not d.allowed and d.retry_after == 0.001
    clock.advance(0.001)
    d = limiter.acquire(p, {"requests": 1})
    assert d.allowed and d.state("tb").remaining == 0

    clock.advance(3)
    d = limiter.acquire(p, {"requests": 2})
    assert not d.allowed and d.retry_after == 9.0  # half a token now, two needed
    clock.advance(27)  # 30 s since the bucket was last empty: full again
    assert left(limiter, p) == {"tb": 5}
    d = limiter.acquire(p, {"requests": 5})
    assert d.allowed and d.state("tb").remaining == 0

    d = limiter.acquire(p, {"requests": 6})  # above the burst: never
    assert not d.allowed and d.retry_after is None


def test_token_bucket_settle_and_release(limiter: quota.Limiter, clock: FakeClock) -> None:
    p = P("bucket")
    d = limiter.acquire(p, {"requests": 4})
    assert d.state("tb").remaining == 1
    assert limiter.settle(d, {"requests": 2}) is True
    assert left(limiter, p) == {"tb": 3}
    d = limiter.acquire(p, {"requests": 3})
    assert limiter.release(d) is True
    assert left(limiter, p) == {"tb": 3}


# -- fixed window ---------------------------------------------------------------------------


def test_fixed_window_aligned_to_the_epoch(limiter: quota.Limiter, clock: FakeClock) -> None:
    p = P("fixed")
    clock.set(START.timestamp() + 10)
    for i in range(5):
        d = limiter.acquire(p, {"requests": 1})
        assert d.allowed and d.state("fw").remaining == 4 - i
    d = limiter.acquire(p, {"requests": 1})
    assert not d.allowed and d.denied_by == "fw"
    assert d.retry_after == 50.0
    assert d.state("fw").reset_after == 50.0
    assert d.headers()["Retry-After"] == "50"
    clock.set(START.timestamp() + 59.999)
    assert not limiter.acquire(p, {"requests": 1}).allowed
    clock.set(START.timestamp() + 60)
    d = limiter.acquire(p, {"requests": 1})
    assert d.allowed and d.state("fw").remaining == 4
    assert limiter.acquire(p, {"requests": 6}).retry_after is None


def test_fixed_window_with_an_offset(limiter: quota.Limiter, clock: FakeClock) -> None:
    p = P("fixed_offset")
    clock.set(START.timestamp() + 10)  # window [START-30 s, START+30 s)
    assert limiter.acquire(p, {"requests": 5}).allowed
    d = limiter.acquire(p, {"requests": 1})
    assert not d.allowed and d.retry_after == 20.0
    clock.set(START.timestamp() + 30)
    assert limiter.acquire(p, {"requests": 5}).allowed


# -- concurrency ----------------------------------------------------------------------------


def test_concurrency_leases_release_and_expiry(limiter: quota.Limiter, clock: FakeClock) -> None:
    p = P("conc")
    t0 = clock.ms
    a1 = limiter.acquire(p, {"inflight": 1}, request_id="a1")
    a2 = limiter.acquire(p, {"inflight": 1}, request_id="a2")
    assert a1.allowed and a2.allowed
    assert a2.state("inflight").remaining == 0
    d = limiter.acquire(p, {"inflight": 1})
    assert not d.allowed and d.denied_by == "inflight"
    assert d.status == 429
    assert d.retry_after == 30.0  # a1's lease expires

    clock.ms = t0 + 10_000
    assert limiter.acquire(p, {"inflight": 1}).retry_after == 20.0
    assert limiter.release(a1) is True  # a1 finished: its slot is free at once
    assert left(limiter, p) == {"inflight": 1}
    a3 = limiter.acquire(p, {"inflight": 1}, request_id="a3")
    assert a3.allowed
    d = limiter.acquire(p, {"inflight": 1})
    assert not d.allowed
    assert d.retry_after == 20.001  # a2's lease (started 1 ms after a1's) expires

    # a2 was never released (a crashed worker): its lease expires by itself.
    clock.ms = t0 + 30_001
    a4 = limiter.acquire(p, {"inflight": 1}, request_id="a4")
    assert a4.allowed and a4.state("inflight").remaining == 0
    # Releasing the expired lease later must not free anyone else's slot.
    limiter.release(a2)
    assert left(limiter, p) == {"inflight": 0}
    # Settling ends a lease like a release does.
    assert limiter.settle(a3, {}) is True
    assert left(limiter, p) == {"inflight": 1}
    assert limiter.acquire(p, {"inflight": 3}).retry_after is None


# -- global scope ---------------------------------------------------------------------------


def test_global_scope_is_shared_across_accounts(limiter: quota.Limiter, clock: FakeClock) -> None:
    a, b, c = P("shared", "A"), P("shared", "B"), P("shared", "C")
    t0 = clock.ms
    assert limiter.acquire(a, {"requests": 1}).allowed
    clock.ms = t0 + 1000
    assert limiter.acquire(a, {"requests": 1}).allowed
    d = limiter.acquire(a, {"requests": 1})
    assert not d.allowed and d.denied_by == "per_acct" and d.retry_after == 59.0
    clock.ms = t0 + 2000
    d = limiter.acquire(b, {"requests": 1})
    assert d.allowed
    assert d.state("platform").remaining == 0 and d.state("per_acct").remaining == 1
    d = limiter.acquire(c, {"requests": 1})
    assert not d.allowed and d.denied_by == "platform" and d.retry_after == 58.0
    assert d.state("per_acct").remaining == 2
    assert left(limiter, c) == {"platform": 0, "per_acct": 2}
    limiter.reset(a)  # resets the account, never the platform-wide budget
    assert left(limiter, a) == {"platform": 0, "per_acct": 2}
    clock.ms = t0 + 60_000
    assert left(limiter, c) == {"platform": 1, "per_acct": 2}
    assert limiter.acquire(c, {"requests": 1}).allowed


def test_global_scope_release_by_decision(limiter: quota.Limiter) -> None:
    a, b = P("shared", "A"), P("shared", "B")
    d = limiter.acquire(a, {"requests": 1}, request_id="ga")
    assert limiter.release(d) is True
    assert left(limiter, b) == {"platform": 3, "per_acct": 2}
    assert left(limiter, a) == {"platform": 3, "per_acct": 2}


def test_global_scope_release_by_request_id(limiter: quota.Limiter) -> None:
    a = P("shared", "A")
    limiter.acquire(a, {"requests": 1}, request_id="gb")
    assert limiter.release("gb", who=a) is True
    assert left(limiter, a) == {"platform": 3, "per_acct": 2}


# -- sliding window strictness under compression --------------------------------------------


def test_sliding_window_never_over_admits_when_entries_merge(
    limiter: quota.Limiter, clock: FakeClock
) -> None:
    p = P("coarse")  # 100 tokens/minute, only 4 log entries kept
    rng = random.Random(1234)
    admitted: list[tuple[int, int]] = []
    for _ in range(3000):
        clock.advance_ms(rng.randint(0, 3000))
        cost = rng.randint(1, 30)
        d = limiter.acquire(p, {"tokens": cost})
        if d.allowed:
            admitted.append((clock.ms, cost))
        else:
            assert d.retry_after is not None and d.retry_after > 0
    assert len(admitted) > 300
    # No trailing 60 s window ever holds more than 100 tokens.
    for i, (t, _) in enumerate(admitted):
        window = sum(c for u, c in admitted[: i + 1] if u > t - 60_000)
        assert window <= 100, (t, window)


# -- peek, reset, balances ------------------------------------------------------------------


def test_peek_charges_nothing(limiter: quota.Limiter, clock: FakeClock) -> None:
    p = P("wallet")
    first = limiter.peek(p)
    for _ in range(20):
        assert limiter.peek(p) == first
    assert [(s.name, s.limit, s.remaining, s.reset_after, s.retry_after) for s in first] == [
        ("rpm", 100, 100, 0.0, 0.0),
        ("wallet", 1000, 1000, 0.0, 0.0),
    ]
    d = limiter.acquire(p, {"requests": 1, "credits": 10})
    assert d.state("rpm").remaining == 99 and d.state("wallet").remaining == 990
    clock.advance(15)
    states = limiter.peek(p)
    assert [(s.name, s.remaining, s.reset_after) for s in states] == [
        ("rpm", 99, 45.0),
        ("wallet", 990, 0.0),
    ]
    assert limiter.peek(p) == states


def test_reset_keeps_the_balance_unless_asked(limiter: quota.Limiter) -> None:
    p = P("wallet")
    for _ in range(30):
        limiter.acquire(p, {"requests": 1, "credits": 10})
    assert left(limiter, p) == {"rpm": 70, "wallet": 700}
    limiter.reset(p)
    assert left(limiter, p) == {"rpm": 100, "wallet": 700}
    assert limiter.top_up(p, "credits", 50) == 750
    limiter.reset(p, include_balance=True)
    assert left(limiter, p) == {"rpm": 100, "wallet": 1000}
    other = P("wallet", "someone-else")
    limiter.acquire(other, {"requests": 1, "credits": 1})
    limiter.reset(p, include_balance=True)
    assert left(limiter, other) == {"rpm": 99, "wallet": 999}


def test_sliding_window_retry_waits_for_enough_entries(
    limiter: quota.Limiter, clock: FakeClock
) -> None:
    p = P("wallet")
    t0 = clock.ms
    for offset, cost in ((0, 30), (10_000, 30), (20_000, 40)):
        clock.ms = t0 + offset
        assert limiter.acquire(p, {"requests": cost}).allowed
    clock.ms = t0 + 30_000
    d = limiter.acquire(p, {"requests": 50})
    assert not d.allowed and d.denied_by == "rpm"
    assert d.retry_after == 40.0  # the first two entries (60) must leave: at t=70 s
    assert d.state("rpm").reset_after == 50.0  # the last entry leaves at t=80 s
    assert limiter.acquire(p, {"requests": 30}).retry_after == 30.0
    assert limiter.acquire(p, {"requests": 101}).retry_after is None  # above the limit
    clock.ms = t0 + 70_000
    d = limiter.acquire(p, {"requests": 50})
    assert d.allowed and d.state("rpm").remaining == 10


def test_sliding_window_settle_and_release(limiter: quota.Limiter, clock: FakeClock) -> None:
    p = P("wallet")
    d1 = limiter.acquire(p, {"requests": 30})
    clock.advance(5)
    d2 = limiter.acquire(p, {"requests": 30})
    assert limiter.settle(d1, {"requests": 10}) is True
    assert left(limiter, p)["rpm"] == 60
    assert limiter.release(d2) is True
    assert left(limiter, p)["rpm"] == 90
    clock.advance(55)  # d1's remaining 10 leave the window at t=60 s
    assert left(limiter, p)["rpm"] == 100


def test_calendar_day_in_the_plans_time_zone_across_dst(
    limiter: quota.Limiter, clock: FakeClock
) -> None:
    p = P("new_york")
    # 2026-03-08 is 23 hours long in New York: 05:00 UTC to 04:00 UTC the next day.
    clock.set(datetime(2026, 3, 8, 12, tzinfo=timezone.utc))
    for _ in range(3):
        d = limiter.acquire(p, {"requests": 1})
        assert d.allowed
    assert d.state("daily").window == 23 * 3600.0
    assert d.state("daily").reset_after == 16 * 3600.0
    d = limiter.acquire(p, {"requests": 1})
    assert not d.allowed and d.retry_after == 16 * 3600.0
    clock.set(datetime(2026, 3, 9, 3, 59, 59, 999_000, tzinfo=timezone.utc))
    assert not limiter.acquire(p, {"requests": 1}).allowed
    clock.set(datetime(2026, 3, 9, 4, tzinfo=timezone.utc))
    d = limiter.acquire(p, {"requests": 1})
    assert d.allowed and d.state("daily").remaining == 2
    assert d.state("daily").window == 24 * 3600.0


def test_cost_on_an_unlimited_meter_is_free(limiter: quota.Limiter) -> None:
    p = P("bucket")  # limits requests only; tokens are a known meter of the catalog
    for _ in range(10):
        assert limiter.acquire(p, {"tokens": 10**9}).allowed
    assert left(limiter, p) == {"tb": 5}


# -- reservations ---------------------------------------------------------------------------


def test_reservation_expires_after_its_ttl(custom: quota.Catalog, clock: FakeClock) -> None:
    lim = quota.Limiter(custom, clock=clock, reservation_ttl=10)
    p = P("wallet")
    d1 = lim.acquire(p, {"requests": 1, "credits": 100}, request_id="r1")
    d2 = lim.acquire(p, {"requests": 1, "credits": 100}, request_id="r2")
    clock.advance(9.999)
    assert lim.settle(d1, {"credits": 40}) is True
    clock.advance(0.001)
    assert lim.settle(d2, {"credits": 40}) is False  # record gone: the estimate stays
    assert left(lim, p) == {"rpm": 98, "wallet": 1000 - 40 - 100}
    # Once the record is gone the request id is fresh again.
    d = lim.acquire(p, {"requests": 1, "credits": 1}, request_id="r2")
    assert d.allowed and not d.replayed


def test_request_ids_are_per_account(limiter: quota.Limiter) -> None:
    a, b = P("wallet", "A"), P("wallet", "B")
    assert limiter.acquire(a, {"requests": 1, "credits": 100}, request_id="req-1").allowed
    d = limiter.acquire(b, {"requests": 1, "credits": 100}, request_id="req-1")
    assert d.allowed and not d.replayed
    assert left(limiter, b) == {"rpm": 99, "wallet": 900}


def test_settle_rejects_bad_targets(limiter: quota.Limiter) -> None:
    with pytest.raises(quota.CostError, match="Decision or a request id"):
        limiter.settle("", {"requests": 1})
    with pytest.raises(quota.CostError, match="Decision or a request id"):
        limiter.release(42)  # type: ignore[arg-type]


# -- threads --------------------------------------------------------------------------------


def _hammer(n_threads: int, per_thread: int, fn: Callable[[], bool]) -> int:
    barrier = threading.Barrier(n_threads)
    counts = [0] * n_threads

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(per_thread):
            counts[i] += fn()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def test_threads_admit_exactly_the_limit(limiter: quota.Limiter) -> None:
    p = P("wallet")
    admitted = _hammer(8, 50, lambda: limiter.acquire(p, {"requests": 1}).allowed)
    assert admitted == 100
    assert left(limiter, p)["rpm"] == 0


def test_threads_spend_the_balance_exactly(limiter: quota.Limiter) -> None:
    p = P("wallet", "rich")
    admitted = _hammer(8, 50, lambda: limiter.acquire(p, {"credits": 7}).allowed)
    assert admitted == 1000 // 7
    assert left(limiter, p)["wallet"] == 1000 % 7


def test_settle_by_request_id_needs_the_principal() -> None:
    limiter = quota.Limiter("zylo", "memory://", clock=lambda: 1_800_000_000.0)
    p = quota.Principal(account="a", plan="go")
    assert limiter.acquire(p, {"tokens": 10}, request_id="r").allowed
    with pytest.raises(quota.CostError, match="needs who=Principal"):
        limiter.settle("r", {"tokens": 5})
    other = quota.Principal(account="b", plan="go")
    assert limiter.settle("r", {"tokens": 5}, who=other) is False
    assert limiter.settle("r", {"tokens": 5}, who=p) is True


def test_a_cost_on_a_tool_meter_needs_the_tool_feature() -> None:
    limiter = quota.Limiter("zylo", "memory://", clock=lambda: 1_800_000_000.0)
    basic = quota.Principal(account="a", plan="basic", key="k1")
    go = quota.Principal(account="b", plan="go", key="k2")
    d = limiter.acquire(basic, {"requests": 1, "google_search": 1})
    assert (d.status, d.denied_by) == (403, "feature:google_search")
    assert limiter.peek(basic)[0].remaining == 10  # nothing charged
    d = limiter.acquire(go, {"requests": 1, "code_execution": 1})
    assert (d.status, d.denied_by) == (403, "feature:code_execution")
    assert limiter.acquire(go, {"requests": 1, "url_context": 1}).allowed
    # web_extract is a budget, not a feature: every plan may spend it.
    assert limiter.acquire(basic, {"requests": 1, "web_extract": 1}).allowed


def test_top_up_rejects_bad_amounts_and_saturates() -> None:
    limiter = quota.Limiter("zylo", "memory://", clock=lambda: 1_800_000_000.0)
    p = quota.Principal(account="rich", plan="go")
    for bad in (0, -5, 1.5, True, 2**53):
        with pytest.raises(quota.CostError, match="top_up amount"):
            limiter.top_up(p, "credits", bad)  # type: ignore[arg-type]
    assert limiter.top_up(p, "credits", 2**53 - 1) == 2**53 - 1  # capped, still exact in Lua
