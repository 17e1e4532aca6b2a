"""Acceptance: the Zyla marketplace (DESIGN.md, "The job") through the plain Limiter API.

Billing-cycle monthly quotas anchored on ``cycle_start`` (the 31st clamps to the month's last
day), success-only counting (failed calls are released), a 50-call / 7-day trial, and upgrades
that start a new cycle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from conftest import FakeClock

import quota

UTC = dt.timezone.utc
ANCHOR = dt.datetime(2026, 1, 31, 10, tzinfo=UTC)
FEB_RENEWAL = dt.datetime(2026, 2, 28, 10, tzinfo=UTC)
MAR_RENEWAL = dt.datetime(2026, 3, 31, 10, tzinfo=UTC)
APR_RENEWAL = dt.datetime(2026, 4, 30, 10, tzinfo=UTC)
REMAINING = "X-Zyla-API-Calls-Monthly-Remaining"
LIMIT = "X-Zyla-RateLimit-Limit"
RESET = "X-Zyla-RateLimit-Reset"


@pytest.fixture(scope="module")
def zyla() -> quota.Catalog:
    return quota.Catalog.load("zyla")


@pytest.fixture
def limiter(zyla: quota.Catalog, clock: FakeClock, storage: str) -> Iterator[quota.Limiter]:
    with quota.Limiter(zyla, storage, clock=clock) as lim:
        yield lim


def seconds(a: dt.datetime, b: dt.datetime) -> float:
    return (b - a).total_seconds()


def monthly(lim: quota.Limiter, p: quota.Principal) -> int:
    (state,) = lim.peek(p)
    assert state.name == "monthly"
    return state.remaining


def test_catalog_plans(zyla: quota.Catalog) -> None:
    assert sorted(zyla.plans) == ["basic", "pro", "trial"]
    assert all(plan.success_only for plan in zyla.plans.values())
    assert [(lim.name, lim.amount) for lim in zyla.plans["basic"].limits] == [("monthly", 1000)]
    assert [(lim.name, lim.amount) for lim in zyla.plans["pro"].limits] == [("monthly", 10_000)]
    assert [(lim.name, lim.amount) for lim in zyla.plans["trial"].limits] == [("trial", 50)]


def test_monthly_quota_on_a_billing_cycle_anchored_on_the_31st(
    limiter: quota.Limiter, clock: FakeClock
) -> None:
    p = quota.Principal(account="acct_z", plan="basic", cycle_start=ANCHOR)
    clock.set(dt.datetime(2026, 2, 1, tzinfo=UTC))
    to_feb = seconds(clock.now, FEB_RENEWAL)
    assert to_feb == 27 * 86_400 + 36_000
    for i in range(1000):
        d = limiter.acquire(p, {"requests": 1})
        assert d.allowed, i
        headers = d.headers()
        assert headers[REMAINING] == str(999 - i)
        assert headers[LIMIT] == "1000"
        assert headers[RESET] == str(int(to_feb))
    assert set(headers) == {REMAINING, LIMIT, RESET}  # the catalog's custom style only

    clock.set(dt.datetime(2026, 2, 10, tzinfo=UTC))
    d = limiter.acquire(p, {"requests": 1})
    to_feb = seconds(clock.now, FEB_RENEWAL)
    assert to_feb == 18 * 86_400 + 36_000
    assert not d.allowed
    assert d.status == 429
    assert d.denied_by == "monthly"
    assert d.code == "monthly_quota_exceeded"
    assert d.retry_after == to_feb
    assert d.headers() == {
        REMAINING: "0",
        LIMIT: "1000",
        RESET: str(int(to_feb)),
        "Retry-After": str(int(to_feb)),
    }

    clock.set(FEB_RENEWAL)
    clock.advance_ms(-1)
    d = limiter.acquire(p, {"requests": 1})
    assert not d.allowed and d.retry_after == 0.001

    # The cycle renews on Feb 28 10:00 (the 31st clamped), and runs to Mar 31 10:00.
    clock.set(FEB_RENEWAL)
    to_mar = seconds(FEB_RENEWAL, MAR_RENEWAL)
    assert to_mar == 31 * 86_400
    d = limiter.acquire(p, {"requests": 1})
    assert d.allowed
    assert d.state("monthly").reset_after == to_mar
    assert d.headers() == {REMAINING: "999", LIMIT: "1000", RESET: str(int(to_mar))}
    for _ in range(999):
        assert limiter.acquire(p, {"requests": 1}).allowed

    clock.set(dt.datetime(2026, 3, 15, 12, 30, tzinfo=UTC))
    d = limiter.acquire(p, {"requests": 1})
    assert not d.allowed and d.retry_after == seconds(clock.now, MAR_RENEWAL)
    assert d.headers()[RESET] == str(int(seconds(clock.now, MAR_RENEWAL)))

    # Back to the 31st in March: not chained from the clamped 28th.
    clock.set(MAR_RENEWAL)
    d = limiter.acquire(p, {"requests": 1})
    assert d.allowed
    assert d.headers() == {
        REMAINING: "999",
        LIMIT: "1000",
        RESET: str(int(seconds(MAR_RENEWAL, APR_RENEWAL))),
    }
    assert seconds(MAR_RENEWAL, APR_RENEWAL) == 30 * 86_400


def test_reset_header_counts_down_with_the_clock(limiter: quota.Limiter, clock: FakeClock) -> None:
    p = quota.Principal(account="acct_z", plan="basic", cycle_start=ANCHOR)
    clock.set(FEB_RENEWAL - dt.timedelta(seconds=90.5))
    assert limiter.acquire(p, {"requests": 1}).headers()[RESET] == "91"  # rounded up
    clock.advance(60)
    assert limiter.acquire(p, {"requests": 1}).headers()[RESET] == "31"
    assert monthly(limiter, p) == 998


def test_success_only_counting_releases_failed_calls(
    limiter: quota.Limiter, clock: FakeClock
) -> None:
    p = quota.Principal(account="acct_z", plan="basic", cycle_start=ANCHOR)
    clock.set(dt.datetime(2026, 2, 2, tzinfo=UTC))
    for i in range(10):  # ten calls that fail upstream (e.g. a 500): released
        d = limiter.acquire(p, {"requests": 1}, request_id=f"fail-{i}")
        assert d.allowed
        assert limiter.release(d) is True
    assert monthly(limiter, p) == 1000
    for i in range(1000):  # successful calls are settled and count
        d = limiter.acquire(p, {"requests": 1}, request_id=f"ok-{i}")
        assert d.allowed
        assert limiter.settle(d, {"requests": 1}) is True
    assert monthly(limiter, p) == 0
    d = limiter.acquire(p, {"requests": 1})
    assert not d.allowed and d.denied_by == "monthly"
    # A settled call cannot be released afterwards.
    assert limiter.release("ok-999", who=p) is False  # already settled: no-op
    assert monthly(limiter, p) == 0


def test_a_failure_at_the_edge_frees_the_slot(limiter: quota.Limiter, clock: FakeClock) -> None:
    p = quota.Principal(account="acct_z", plan="basic", cycle_start=ANCHOR)
    clock.set(dt.datetime(2026, 2, 2, tzinfo=UTC))
    for _ in range(999):
        limiter.acquire(p, {"requests": 1})
    last = limiter.acquire(p, {"requests": 1}, request_id="last")
    assert last.allowed and last.headers()[REMAINING] == "0"
    assert not limiter.acquire(p, {"requests": 1}).allowed
    assert limiter.release(last) is True  # the upstream call failed
    d = limiter.acquire(p, {"requests": 1})
    assert d.allowed and d.headers()[REMAINING] == "0"


def test_trial_ends_after_50_calls(limiter: quota.Limiter, clock: FakeClock) -> None:
    start = dt.datetime(2026, 3, 1, 8, tzinfo=UTC)
    p = quota.Principal(account="acct_t", plan="trial", cycle_start=start)
    clock.set(start + dt.timedelta(days=1))
    for i in range(50):
        d = limiter.acquire(p, {"requests": 1})
        assert d.allowed, i
        assert d.state("trial").remaining == 49 - i
    assert d.headers()[REMAINING] == "0"
    assert d.headers()[LIMIT] == "50"
    assert d.headers()[RESET] == str(6 * 86_400)  # the trial's span ends in 6 days
    d = limiter.acquire(p, {"requests": 1})
    assert not d.allowed
    assert d.status == 429
    assert d.denied_by == "trial"
    assert d.code == "trial_exhausted"
    assert d.retry_after is None  # the trial never comes back
    assert d.message == "the free trial is over (50 calls or 7 days): subscribe to a plan"
    assert "Retry-After" not in d.headers()
    clock.advance(10 * 86_400)
    assert not limiter.acquire(p, {"requests": 1}).allowed


def test_trial_ends_after_7_days_even_with_calls_left(
    limiter: quota.Limiter, clock: FakeClock
) -> None:
    start = dt.datetime(2026, 3, 1, 8, tzinfo=UTC)
    p = quota.Principal(account="acct_t", plan="trial", cycle_start=start)
    clock.set(start)
    for _ in range(10):
        assert limiter.acquire(p, {"requests": 1}).allowed
    clock.set(start + dt.timedelta(days=7))
    clock.advance_ms(-1)
    d = limiter.acquire(p, {"requests": 1})
    assert d.allowed and d.state("trial").remaining == 39
    clock.set(start + dt.timedelta(days=7))
    d = limiter.acquire(p, {"requests": 1})
    assert not d.allowed
    assert d.denied_by == "trial"
    assert d.retry_after is None
    assert "Retry-After" not in d.headers()


def test_trial_counts_successes_only(limiter: quota.Limiter, clock: FakeClock) -> None:
    start = dt.datetime(2026, 3, 1, 8, tzinfo=UTC)
    p = quota.Principal(account="acct_t", plan="trial", cycle_start=start)
    clock.set(start)
    for _ in range(20):
        assert limiter.release(limiter.acquire(p, {"requests": 1})) is True
    for _ in range(50):
        assert limiter.acquire(p, {"requests": 1}).allowed
    assert not limiter.acquire(p, {"requests": 1}).allowed


def test_trial_needs_a_cycle_start(limiter: quota.Limiter) -> None:
    p = quota.Principal(account="acct_t", plan="trial")
    with pytest.raises(quota.CostError, match="cycle_start"):
        limiter.acquire(p, {"requests": 1})


@pytest.mark.parametrize(
    ("plan", "limit", "what"),
    [("trial", "trial", "a one-time allowance"), ("basic", "monthly", "a billing-cycle month")],
)
def test_a_principal_without_cycle_start_gets_an_error_naming_the_field(
    limiter: quota.Limiter, clock: FakeClock, plan: str, limit: str, what: str
) -> None:
    """Not a traceback of another type, and never calendar months in place of the billing
    cycle: a PrincipalError (a QuotaError: the middleware answers 503) naming the field, the
    plan and the limit, from acquire and peek alike, and nothing is charged."""
    who = quota.Principal(account=f"acct_no_cycle_{plan}", plan=plan)
    message = (
        f"plan {plan!r}, limit {limit!r}: {what} starts at the principal's cycle_start, and this"
        " principal has none: give Principal(cycle_start=...)"
    )
    for call in (lambda: limiter.acquire(who, {"requests": 1}), lambda: limiter.peek(who)):
        with pytest.raises(quota.PrincipalError) as caught:
            call()
        assert str(caught.value) == message
        assert isinstance(caught.value, quota.QuotaError)
        assert (caught.value.field, caught.value.plan, caught.value.limit) == (
            "cycle_start",
            plan,
            limit,
        )
    anchored = who.model_copy(update={"cycle_start": clock.now})
    assert limiter.peek(anchored)[0].remaining == (50 if plan == "trial" else 1000)


def test_upgrade_starts_a_new_cycle_without_carry_over(
    limiter: quota.Limiter, clock: FakeClock
) -> None:
    basic = quota.Principal(account="acct_u", plan="basic", cycle_start=ANCHOR)
    clock.set(dt.datetime(2026, 2, 10, tzinfo=UTC))
    for _ in range(600):
        assert limiter.acquire(basic, {"requests": 1}).allowed
    assert monthly(limiter, basic) == 400

    upgraded_at = dt.datetime(2026, 2, 10, 12, tzinfo=UTC)
    clock.set(upgraded_at)
    pro = quota.Principal(account="acct_u", plan="pro", cycle_start=upgraded_at)
    assert monthly(limiter, pro) == 10_000  # not 10_000 + 400, not 10_000 - 600
    d = limiter.acquire(pro, {"requests": 1})
    assert d.allowed
    next_cycle = dt.datetime(2026, 3, 10, 12, tzinfo=UTC)
    assert d.headers() == {
        REMAINING: "9999",
        LIMIT: "10000",
        RESET: str(int(seconds(upgraded_at, next_cycle))),
    }
    for _ in range(9999):
        assert limiter.acquire(pro, {"requests": 1}).allowed
    d = limiter.acquire(pro, {"requests": 1})
    assert not d.allowed and d.retry_after == seconds(upgraded_at, next_cycle)


def test_upgrade_from_an_exhausted_basic(limiter: quota.Limiter, clock: FakeClock) -> None:
    basic = quota.Principal(account="acct_u", plan="basic", cycle_start=ANCHOR)
    clock.set(dt.datetime(2026, 2, 3, tzinfo=UTC))
    assert limiter.acquire(basic, {"requests": 1000}).allowed
    assert not limiter.acquire(basic, {"requests": 1}).allowed
    clock.advance(1)
    pro = quota.Principal(account="acct_u", plan="pro", cycle_start=clock.now)
    d = limiter.acquire(pro, {"requests": 1})
    assert d.allowed and d.state("monthly").remaining == 9999


def test_upgrade_from_trial_to_basic(limiter: quota.Limiter, clock: FakeClock) -> None:
    start = dt.datetime(2026, 3, 1, 8, tzinfo=UTC)
    trial = quota.Principal(account="acct_t", plan="trial", cycle_start=start)
    clock.set(start)
    assert limiter.acquire(trial, {"requests": 50}).allowed
    assert not limiter.acquire(trial, {"requests": 1}).allowed
    clock.advance(3600)
    basic = quota.Principal(account="acct_t", plan="basic", cycle_start=clock.now)
    d = limiter.acquire(basic, {"requests": 1})
    assert d.allowed and d.headers()[REMAINING] == "999"
