"""An overdrawn prepaid balance shows as negative: a settle may spend past the balance (the
estimate was too low), and the debt is what ``peek`` (``LimitState.remaining``), ``/stats``
(``quota.views``) and a denied acquire report, on every engine alike (memory, a real Redis, a
real Cluster; sync and asyncio). Every other algorithm keeps ``remaining >= 0``.
(``quota usage --json`` on the same state: tests/test_cli_ops.py.)"""

from __future__ import annotations

import asyncio

import pytest
from conftest import FakeClock, storage_url

import quota
from quota.views import astats, stats

ZYLO = quota.Catalog.load("zylo")
GRANT = 10_000_000  # the go plan's $10
OWED = 2_500_000


def _overdraw(limiter: quota.Limiter, who: quota.Principal) -> None:
    decision = limiter.acquire(who, {"requests": 1, "credits": 1_000_000})
    assert decision.allowed
    assert limiter.settle(decision, {"credits": GRANT + OWED})


def test_peek_stats_and_denials_show_the_debt(storage: str, clock: FakeClock) -> None:
    who = quota.Principal(account="acct_debt", plan="go", key="sk-debt")
    with quota.Limiter(ZYLO, storage, clock=clock) as limiter:
        _overdraw(limiter, who)
        states = {s.name: s for s in limiter.peek(who)}
        assert states["credits"].remaining == -OWED
        assert states["credits"].limit == GRANT  # the grant, not the debt
        assert not states["credits"].allowed
        assert all(s.remaining >= 0 for s in states.values() if s.algorithm != "balance")

        body = stats(limiter, who)
        assert body["credits"] == {"balance": -OWED, "limit": GRANT}
        assert body["balances"] == {"credits": -OWED}

        denied = limiter.acquire(who, {"requests": 1, "credits": 1})
        assert not denied.allowed and denied.status == 402 and denied.denied_by == "credits"
        state = next(s for s in denied.states if s.name == "credits")
        assert state.remaining == -OWED and state.retry_after is None

        # A top-up pays the debt first.
        assert limiter.top_up(who, "credits", 3_000_000) == 500_000
        assert {s.name: s.remaining for s in limiter.peek(who)}["credits"] == 500_000


def test_the_asyncio_limiter_agrees(storage: str, clock: FakeClock) -> None:
    who = quota.Principal(account="acct_debt_async", plan="go", key="sk-debt")

    async def run() -> None:
        async with quota.AsyncLimiter(ZYLO, storage, clock=clock) as limiter:
            decision = await limiter.acquire(who, {"requests": 1, "credits": 1_000_000})
            assert decision.allowed
            assert await limiter.settle(decision, {"credits": GRANT + OWED})
            states = {s.name: s.remaining for s in await limiter.peek(who)}
            assert states["credits"] == -OWED
            body = await astats(limiter, who)
            assert body["credits"] == {"balance": -OWED, "limit": GRANT}

    asyncio.run(run())


@pytest.mark.parametrize("engine", ["memory", "redis"])
def test_a_spent_balance_at_zero_still_reads_zero(
    engine: str, request: pytest.FixtureRequest, clock: FakeClock
) -> None:
    """Exactly spent is 0, not negative: only a debt is."""
    who = quota.Principal(account="acct_zero", plan="go")
    with quota.Limiter(ZYLO, storage_url(request, engine), clock=clock) as limiter:
        decision = limiter.acquire(who, {"requests": 1, "credits": GRANT})
        assert decision.allowed
        assert {s.name: s.remaining for s in limiter.peek(who)}["credits"] == 0
        assert not limiter.acquire(who, {"requests": 1, "credits": 1}).allowed
