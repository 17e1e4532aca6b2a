"""The memory engine: bounded memory, the URL registry, and engine-level all-or-nothing."""

from __future__ import annotations

import pytest

import quota
from quota.backends import Op, open_backend, schemes
from quota.backends.memory import MemoryBackend

T0 = 1_800_000_000_000  # epoch ms


def test_registry() -> None:
    assert "memory" in schemes()
    assert isinstance(open_backend("memory://"), MemoryBackend)
    with pytest.raises(ValueError, match=r"unknown storage URL 'mongo://x'.*memory://"):
        open_backend("mongo://x")


def test_memory_is_bounded_by_active_principals() -> None:
    now = [T0 / 1000]
    engine = MemoryBackend()
    limiter = quota.Limiter("zylo", engine, clock=lambda: now[0], reservation_ttl=60)
    # 2,000 accounts each make a request within one minute: state for all of them.
    for i in range(2_000):
        who = quota.Principal(account=f"acct{i}", plan="basic", key=f"sk{i}")
        assert limiter.acquire(who, {"requests": 1, "tokens": 10, "web_extract": 1})
        now[0] += 0.01
    busy = len(engine)
    assert busy >= 2_000 * 4  # rpm, rpd, tpd, web_extract + reservation records
    # 33 days later (past Zylo's 31 days of usage history) one account is active: everything
    # else is swept.
    now[0] += 33 * 86_400
    who = quota.Principal(account="acct0", plan="basic", key="sk0")
    assert limiter.acquire(who, {"requests": 1})
    assert len(engine) <= 3  # rpm, rpd and the requests history of the active account


def test_balances_are_never_swept() -> None:
    now = [T0 / 1000]
    engine = MemoryBackend()
    limiter = quota.Limiter("zylo", engine, clock=lambda: now[0])
    who = quota.Principal(account="a", plan="go")
    assert limiter.acquire(who, {"credits": 1_000})
    now[0] += 400 * 86_400
    assert limiter.acquire(who, {"requests": 1})
    (credits,) = [s for s in limiter.peek(who) if s.name == "credits"]
    assert credits.remaining == 10_000_000 - 1_000


def test_reservations_expire_after_their_ttl() -> None:
    now = [T0 / 1000]
    limiter = quota.Limiter("zylo", "memory://", clock=lambda: now[0], reservation_ttl=30)
    who = quota.Principal(account="a", plan="go")
    d = limiter.acquire(who, {"tokens": 1_000}, request_id="r1")
    now[0] += 31
    # The record is gone: the estimate stays charged, and settling is a no-op.
    assert limiter.settle(d, {"tokens": 10}) is False
    (tpd,) = [s for s in limiter.peek(who) if s.name == "tpd"]
    assert tpd.remaining == 512_000 - 1_000
    # And the request id can be used again (a new decision, charged again).
    again = limiter.acquire(who, {"tokens": 1_000}, request_id="r1")
    assert again.allowed and not again.replayed
    assert again.state("tpd").remaining == 512_000 - 2_000


def test_engine_all_or_nothing_across_slots() -> None:
    engine = MemoryBackend()
    ops = [
        Op("a1", "x", "requests", "sliding_window", (5, 60_000, 32), 3),
        Op("g", "y", "requests", "fixed_window", (2, T0, T0 + 60_000), 3),
    ]
    verdict = engine.acquire(T0, "a1", ops, "r", 1_000)
    assert not verdict.allowed
    assert [o.allowed for o in verdict.outcomes] == [True, False]
    assert verdict.outcomes[0].remaining == 5  # reported before the (undone) charge
    assert engine.dump() == {}
    assert engine.settle(T0, "a1", "r", None) is False  # a denial records no reservation
    ok = engine.acquire(T0, "a1", [ops[0]], "r", 1_000)
    assert ok.allowed and engine.dump() == {("a1", "x"): (T0, 3)}
    assert engine.settle(T0 + 5, "a1", "r", None) is True
    assert engine.dump() == {}
