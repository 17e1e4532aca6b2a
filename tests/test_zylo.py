"""Acceptance: the Zylo table (DESIGN.md, "The job") played through the plain Limiter API.

Every test injects a FakeClock (epoch seconds, moved by hand) and asserts exact figures.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from conftest import START, FakeClock

import quota

UTC = dt.timezone.utc
DAY = 86_400.0
NEXT_MIDNIGHT = START + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def zylo() -> quota.Catalog:
    return quota.Catalog.load("zylo")


@pytest.fixture
def limiter(zylo: quota.Catalog, clock: FakeClock, storage: str) -> Iterator[quota.Limiter]:
    with quota.Limiter(zylo, storage, clock=clock) as lim:
        yield lim


def who(plan: str, account: str = "acct_42", key: str | None = "sk-one") -> quota.Principal:
    return quota.Principal(account=account, plan=plan, key=key)


def remaining(lim: quota.Limiter, principal: quota.Principal) -> dict[str, int]:
    return {s.name: s.remaining for s in lim.peek(principal)}


# -- the catalog itself ---------------------------------------------------------------------


def test_catalog_matches_the_table(zylo: quota.Catalog) -> None:
    assert sorted(zylo.plans) == ["basic", "enterprise", "go", "mega", "pro"]
    caps = {
        name: {lim.name: lim.amount for lim in plan.limits} for name, plan in zylo.plans.items()
    }
    assert caps["basic"] == {"rpm": 10, "rpd": 7200, "tpd": 200_000, "web_extract": 10}
    assert caps["go"] == {
        "rpd": 28_800,
        "tpd": 512_000,
        "search": 10,
        "web_extract": 10,
        "credits": 10_000_000,
        "upstream": 1_600_000,  # premium tokens of every account: 20% held for mega and up
    }
    assert caps["pro"]["rpd"] == 43_200
    assert caps["pro"]["tpd"] == 1_000_000
    assert caps["pro"]["code_execution"] == 20
    assert caps["pro"]["credits"] == 50_000_000
    assert caps["mega"]["rpd"] == 86_400
    assert caps["mega"]["tpd"] == 5_000_000
    assert caps["mega"]["credits"] == 200_000_000
    assert caps["enterprise"] == {
        "search": 10,
        "code_execution": 20,
        "web_extract": 10,
        "credits": 400_000_000,
        "upstream": 2_000_000,
    }
    assert caps["pro"]["upstream"] == 1_600_000 and caps["mega"]["upstream"] == 2_000_000
    assert zylo.tier_of("gpt-5.5") == "premium"
    assert zylo.tier_of("claude-opus-4.8") == "premium"
    assert zylo.tier_of("gemini-3.1-pro-preview") == "premium"
    assert zylo.tier_of("some-open-model-7b") == "basic"


def test_price_is_in_micro_dollars(zylo: quota.Catalog) -> None:
    # gpt-5.5: $1.25 / M input, $10 / M output.
    assert zylo.price("gpt-5.5", 1000, 500) == 6250
    assert zylo.price("gpt-5.5", 1000, 210) == 3350
    assert zylo.price("claude-opus-4.8", 1_000_000, 0) == 15_000_000
    assert zylo.price("gpt-5.5", 1, 0) == 2  # 1.25 rounded up
    assert zylo.price("some-open-model-7b", 10_000, 10_000) == 0


# -- basic: 10 requests per minute, sliding -------------------------------------------------


def test_basic_rpm_sliding_window_exact_retry(limiter: quota.Limiter, clock: FakeClock) -> None:
    p = who("basic")
    t0 = clock.ms
    for i in range(10):
        clock.ms = t0 + i * 1000
        d = limiter.acquire(p, {"requests": 1})
        assert d.allowed and d.status == 200 and d.denied_by is None
        assert d.state("rpm").remaining == 9 - i
        assert d.state("rpd").remaining == 7199 - i

    clock.ms = t0 + 9500
    d = limiter.acquire(p, {"requests": 1})
    assert not d.allowed
    assert d.status == 429
    assert d.denied_by == "rpm"
    assert d.code == "rate_limit_exceeded"
    assert d.retry_after == 50.5  # the t=0 request leaves the window at t=60
    assert d.state("rpm").retry_after == 50.5
    assert d.state("rpm").remaining == 0
    assert d.state("rpd").allowed and d.state("rpd").remaining == 7190  # not charged
    headers = d.headers()
    assert headers["Retry-After"] == "51"  # rounded up
    assert headers["x-ratelimit-remaining-requests"] == "0"
    body = d.error_body()
    assert body is not None
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["code"] == "rate_limit_exceeded"

    clock.ms = t0 + 59_999  # 1 ms early
    d = limiter.acquire(p, {"requests": 1})
    assert not d.allowed and d.retry_after == 0.001
    assert d.headers()["Retry-After"] == "1"

    clock.ms = t0 + 60_000  # exactly when the first request leaves
    d = limiter.acquire(p, {"requests": 1})
    assert d.allowed
    assert d.state("rpm").remaining == 0
    assert "Retry-After" not in d.headers()

    clock.ms = t0 + 60_500  # the t=1 s request leaves at t=61 s
    d = limiter.acquire(p, {"requests": 1})
    assert not d.allowed and d.denied_by == "rpm" and d.retry_after == 0.5
    assert remaining(limiter, p)["rpd"] == 7189


def test_basic_rpm_counts_in_the_trailing_window_not_per_clock_minute(
    limiter: quota.Limiter, clock: FakeClock
) -> None:
    p = who("basic")
    clock.set(START + dt.timedelta(seconds=50))
    for _ in range(10):
        assert limiter.acquire(p, {"requests": 1}).allowed
    clock.advance(15)  # a new clock minute, but still inside the 60 s window
    d = limiter.acquire(p, {"requests": 1})
    assert not d.allowed and d.denied_by == "rpm" and d.retry_after == 45.0


# -- daily request cap ----------------------------------------------------------------------


def test_basic_daily_request_cap_resets_at_utc_midnight(
    limiter: quota.Limiter, clock: FakeClock
) -> None:
    p = who("basic")
    t0 = clock.ms  # 00:00:00 UTC
    for i in range(7200):
        clock.ms = t0 + i * 6100  # 6.1 s apart: never more than 10 in a minute
        d = limiter.acquire(p, {"requests": 1})
        assert d.allowed, (i, d.denied_by)
    assert d.state("rpd").remaining == 0

    clock.ms = t0 + 7200 * 6100  # 12:12:00
    d = limiter.acquire(p, {"requests": 1})
    assert not d.allowed
    assert d.status == 429
    assert d.denied_by == "rpd"
    assert d.code == "daily_requests_exceeded"
    assert d.retry_after == DAY - 43_920.0
    assert d.state("rpm").allowed  # only the day binds
    assert d.headers()["Retry-After"] == "42480"

    clock.set(NEXT_MIDNIGHT)
    clock.advance_ms(-1)
    d = limiter.acquire(p, {"requests": 1})
    assert not d.allowed and d.denied_by == "rpd" and d.retry_after == 0.001

    clock.set(NEXT_MIDNIGHT)
    d = limiter.acquire(p, {"requests": 1})
    assert d.allowed
    assert d.state("rpd").remaining == 7199
    assert d.state("rpd").reset_after == DAY


def test_go_daily_request_cap_without_rpm(limiter: quota.Limiter, clock: FakeClock) -> None:
    p = who("go")
    clock.set(START + dt.timedelta(hours=20))
    for _ in range(288):
        assert limiter.acquire(p, {"requests": 100}).allowed  # no per-minute limit on go
    d = limiter.acquire(p, {"requests": 1})
    assert not d.allowed and d.denied_by == "rpd" and d.retry_after == 4 * 3600.0
    assert d.state("rpd").remaining == 0
    clock.set(NEXT_MIDNIGHT)
    assert limiter.acquire(p, {"requests": 1}).state("rpd").remaining == 28_799


def test_over_minute_and_day_caps_reports_the_day(limiter: quota.Limiter, clock: FakeClock) -> None:
    p = who("basic")
    t0 = clock.ms
    for i in range(7190):
        clock.ms = t0 + i * 6100
        assert limiter.acquire(p, {"requests": 1}).allowed
    burst = t0 + 7189 * 6100 + 61_000  # the minute window is empty again
    for i in range(10):
        clock.ms = burst + i * 1000
        assert limiter.acquire(p, {"requests": 1}).allowed
    clock.ms = burst + 9500
    d = limiter.acquire(p, {"requests": 1})
    assert not d.allowed
    assert d.state("rpm").allowed is False and d.state("rpm").retry_after == 50.5
    assert d.state("rpd").allowed is False
    assert d.denied_by == "rpd"
    assert d.code == "daily_requests_exceeded"
    assert d.retry_after == (NEXT_MIDNIGHT.timestamp() * 1000 - clock.ms) / 1000
    assert d.retry_after == 42_476.6


# -- daily token cap ------------------------------------------------------------------------


def test_basic_daily_token_cap(limiter: quota.Limiter, clock: FakeClock) -> None:
    p = who("basic")
    clock.set(START + dt.timedelta(hours=18))
    for i in range(3):
        d = limiter.acquire(p, {"requests": 1, "tokens": 60_000})
        assert d.allowed and d.state("tpd").remaining == 200_000 - 60_000 * (i + 1)
        clock.advance(60)
    before = limiter.peek(p)
    d = limiter.acquire(p, {"requests": 1, "tokens": 60_000})
    assert not d.allowed
    assert d.status == 429
    assert d.denied_by == "tpd"
    assert d.code == "daily_tokens_exceeded"
    assert d.retry_after == 6 * 3600.0 - 180
    assert d.state("tpd").remaining == 20_000
    assert d.state("rpm").allowed and d.state("rpd").allowed
    assert limiter.peek(p) == before  # the denial charged no request either

    d = limiter.acquire(p, {"requests": 1, "tokens": 20_000})
    assert d.allowed and d.state("tpd").remaining == 0
    assert not limiter.acquire(p, {"tokens": 1}).allowed

    # More than the day's capacity can never be admitted.
    d = limiter.acquire(p, {"tokens": 200_001})
    assert not d.allowed and d.denied_by == "tpd" and d.retry_after is None
    assert "Retry-After" not in d.headers()

    clock.set(NEXT_MIDNIGHT)
    d = limiter.acquire(p, {"requests": 1, "tokens": 200_000})
    assert d.allowed and d.state("tpd").remaining == 0
    assert d.state("rpd").remaining == 7200 - 1


# -- reservations: settle, release, idempotency --------------------------------------------


def test_settle_and_release(limiter: quota.Limiter, clock: FakeClock) -> None:
    p = who("basic")
    d = limiter.acquire(p, {"requests": 1, "tokens": 1500}, request_id="req-1")
    assert d.allowed and d.request_id == "req-1" and d.reservation is not None
    assert d.state("tpd").remaining == 198_500
    assert limiter.settle(d, {"tokens": 1210}) is True
    state = remaining(limiter, p)
    assert state["tpd"] == 200_000 - 1210
    assert state["rpd"] == 7199 and state["rpm"] == 9  # requests keep their estimate
    # Idempotent: a second settle or release changes nothing.
    assert limiter.settle(d, {"tokens": 5}) is False
    assert limiter.release(d) is False
    assert remaining(limiter, p) == state

    clock.advance(1)
    d2 = limiter.acquire(p, {"requests": 1, "tokens": 1500}, request_id="req-2")
    assert d2.state("tpd").remaining == 198_790 - 1500
    assert limiter.release(d2) is True
    assert remaining(limiter, p) == state  # everything returned, requests too
    assert limiter.release(d2) is False
    assert limiter.settle(d2, {"tokens": 1}) is False
    assert remaining(limiter, p) == state


def test_settle_and_release_by_request_id(limiter: quota.Limiter) -> None:
    p = who("basic")
    limiter.acquire(p, {"requests": 1, "tokens": 1000}, request_id="abc")
    assert limiter.settle("abc", {"tokens": 3000}, who=p) is True  # more than the estimate
    assert remaining(limiter, p)["tpd"] == 197_000
    limiter.acquire(p, {"requests": 1, "tokens": 1000}, request_id="def")
    assert limiter.release("def", who=p) is True
    assert remaining(limiter, p) == {"rpm": 9, "rpd": 7199, "tpd": 197_000, "web_extract": 10}
    assert limiter.release("unknown-id", who=p) is False


def test_settle_of_a_denial_does_nothing(limiter: quota.Limiter) -> None:
    p = who("basic")
    limiter.acquire(p, {"tokens": 200_000})
    d = limiter.acquire(p, {"requests": 1, "tokens": 10})
    assert not d.allowed and d.reservation is None
    assert limiter.settle(d, {"tokens": 0}) is False
    assert limiter.release(d) is False
    assert remaining(limiter, p) == {"rpm": 10, "rpd": 7200, "tpd": 0, "web_extract": 10}


def test_repeated_request_id_charges_once(limiter: quota.Limiter, clock: FakeClock) -> None:
    p = who("basic")
    first = limiter.acquire(p, {"requests": 1, "tokens": 1500}, request_id="dup")
    assert first.replayed is False
    clock.advance(2)
    again = limiter.acquire(p, {"requests": 1, "tokens": 1500}, request_id="dup")
    assert again.allowed and again.replayed is True
    assert again.request_id == "dup"
    assert again.state("tpd").remaining == first.state("tpd").remaining == 198_500
    assert remaining(limiter, p) == {"rpm": 9, "rpd": 7199, "tpd": 198_500, "web_extract": 10}
    # The replay's reservation is the original one: settling it settles once.
    assert limiter.settle(again, {"tokens": 500}) is True
    assert limiter.settle(first, {"tokens": 700}) is False
    assert remaining(limiter, p)["tpd"] == 199_500


def test_replay_is_answered_even_when_the_limit_is_now_full(limiter: quota.Limiter) -> None:
    p = who("basic")
    assert limiter.acquire(p, {"requests": 1}, request_id="r0").allowed
    for _ in range(9):
        assert limiter.acquire(p, {"requests": 1}).allowed
    assert not limiter.acquire(p, {"requests": 1}).allowed
    d = limiter.acquire(p, {"requests": 1}, request_id="r0")
    assert d.allowed and d.replayed
    assert remaining(limiter, p)["rpd"] == 7190


def test_a_denied_acquire_changes_nothing(limiter: quota.Limiter, clock: FakeClock) -> None:
    p = who("basic")
    for _ in range(10):
        limiter.acquire(p, {"requests": 1, "tokens": 100})
    before = limiter.peek(p)
    d = limiter.acquire(p, {"requests": 1, "tokens": 5000}, request_id="no")
    assert not d.allowed and d.denied_by == "rpm"
    assert d.state("tpd").remaining == 199_000  # the state before, not after a charge
    assert limiter.peek(p) == before
    # The denied request id was not recorded: retried later, it is a fresh request.
    clock.advance(60)
    d = limiter.acquire(p, {"requests": 1, "tokens": 5000}, request_id="no")
    assert d.allowed and not d.replayed
    assert d.state("tpd").remaining == 194_000


# -- shared tool budgets --------------------------------------------------------------------


def test_go_search_budget_is_shared_by_google_search_and_url_context(
    limiter: quota.Limiter, clock: FakeClock
) -> None:
    k1 = who("go", key="sk-one")
    t0 = clock.ms
    for i in range(10):
        clock.ms = t0 + i * 1000
        tool = "google_search" if i % 2 == 0 else "url_context"
        d = limiter.acquire(k1, {"requests": 1, tool: 1}, features={tool})
        assert d.allowed, (i, d.denied_by)
        assert d.state("search").remaining == 9 - i
    clock.ms = t0 + 10_000
    for tool in ("google_search", "url_context"):
        d = limiter.acquire(k1, {"requests": 1, tool: 1}, features={tool})
        assert not d.allowed
        assert d.status == 429
        assert d.denied_by == "search"
        assert d.retry_after == 50.0
    # Both tools in one request count twice.
    clock.ms = t0 + 61_000  # t=0 and t=1 have left the window
    d = limiter.acquire(k1, {"requests": 1, "google_search": 1, "url_context": 1})
    assert d.allowed and d.state("search").remaining == 0
    # A request without tools is not held back by the tool budget.
    assert limiter.acquire(k1, {"requests": 1}).allowed


def test_search_budget_is_per_key_but_daily_caps_are_per_account(
    limiter: quota.Limiter,
) -> None:
    k1 = who("go", key="sk-one")
    for _ in range(10):
        assert limiter.acquire(k1, {"requests": 1, "tokens": 100, "google_search": 1}).allowed
    assert not limiter.acquire(k1, {"requests": 1, "google_search": 1}).allowed

    k2 = who("go", key="sk-two")  # same account, another key
    d = limiter.acquire(k2, {"requests": 1, "tokens": 100, "google_search": 1})
    assert d.allowed
    assert d.state("search").remaining == 9
    assert d.state("rpd").remaining == 28_800 - 11
    assert d.state("tpd").remaining == 512_000 - 1100

    # Rotation: a brand new key does not reset the account's daily caps.
    k3 = who("go", key="sk-rotated")
    state = remaining(limiter, k3)
    assert state == {
        "rpd": 28_789,
        "tpd": 510_900,
        "search": 10,
        "web_extract": 10,
        "credits": 10_000_000,
    }

    other = who("go", account="acct_other", key="sk-one")  # same key string, other account
    assert remaining(limiter, other)["rpd"] == 28_800


def test_code_execution_budget_on_pro(limiter: quota.Limiter, clock: FakeClock) -> None:
    p = who("pro")
    t0 = clock.ms
    for i in range(20):
        clock.ms = t0 + i * 500
        d = limiter.acquire(p, {"requests": 1, "code_execution": 1}, features={"code_execution"})
        assert d.allowed and d.state("code_execution").remaining == 19 - i
    clock.ms = t0 + 10_000
    d = limiter.acquire(p, {"requests": 1, "code_execution": 1}, features={"code_execution"})
    assert not d.allowed
    assert d.denied_by == "code_execution"
    assert d.retry_after == 50.0
    # Its own budget: search is untouched.
    d = limiter.acquire(p, {"requests": 1, "google_search": 1}, features={"google_search"})
    assert d.allowed and d.state("search").remaining == 9


@pytest.mark.parametrize("plan", ["basic", "go"])
def test_code_execution_is_not_a_feature_below_pro(limiter: quota.Limiter, plan: str) -> None:
    p = who(plan)
    before = limiter.peek(p)
    d = limiter.acquire(p, {"requests": 1, "code_execution": 1}, features={"code_execution"})
    assert not d.allowed
    assert d.status == 403
    assert d.denied_by == "feature:code_execution"
    assert d.code == "feature_not_allowed"
    assert d.retry_after is None
    assert limiter.peek(p) == before


@pytest.mark.parametrize("plan", ["basic", "go", "pro", "mega", "enterprise"])
def test_web_extract_is_10_per_minute_per_key_on_every_plan(
    limiter: quota.Limiter, clock: FakeClock, plan: str
) -> None:
    p = who(plan)
    t0 = clock.ms
    for i in range(10):
        clock.ms = t0 + i * 2000
        d = limiter.acquire(p, {"web_extract": 1})
        assert d.allowed and d.state("web_extract").remaining == 9 - i
    d = limiter.acquire(p, {"web_extract": 1})
    assert not d.allowed
    assert d.status == 429
    assert d.denied_by == "web_extract"
    assert d.retry_after == 42.0
    assert limiter.acquire(who(plan, key="sk-two"), {"web_extract": 1}).allowed


def test_key_scoped_cost_without_a_key_is_an_error(limiter: quota.Limiter) -> None:
    p = who("go", key=None)
    with pytest.raises(quota.CostError, match="'search' is per API key"):
        limiter.acquire(p, {"requests": 1, "google_search": 1})
    assert remaining(limiter, p)["rpd"] == 28_800


# -- entitlements ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "denied_by", "code"),
    [
        ({"features": {"tools"}}, "feature:tools", "feature_not_allowed"),
        ({"features": {"images"}}, "feature:images", "feature_not_allowed"),
        ({"features": {"google_search"}}, "feature:google_search", "feature_not_allowed"),
        ({"model": "gpt-5.5"}, "model", "model_not_allowed"),
        ({"model": "claude-opus-4.8"}, "model", "model_not_allowed"),
        ({"model": "gemini-3.1-pro-preview"}, "model", "model_not_allowed"),
    ],
)
def test_basic_entitlements_are_403_and_charge_nothing(
    limiter: quota.Limiter, kwargs: dict[str, object], denied_by: str, code: str
) -> None:
    p = who("basic")
    before = limiter.peek(p)
    d = limiter.acquire(p, {"requests": 1, "tokens": 100}, request_id="x", **kwargs)  # type: ignore[arg-type]
    assert not d.allowed
    assert d.status == 403
    assert d.denied_by == denied_by
    assert d.code == code
    assert d.retry_after is None
    assert d.reservation is None
    assert "Retry-After" not in d.headers()
    body = d.error_body()
    assert body is not None and body["error"]["type"] == "permission_error"
    assert limiter.peek(p) == before
    # The request id was not consumed by the 403.
    d = limiter.acquire(p, {"requests": 1, "tokens": 100}, request_id="x")
    assert d.allowed and not d.replayed


def test_basic_tier_and_unknown_models_are_allowed_on_basic(limiter: quota.Limiter) -> None:
    p = who("basic")
    for model in ("llama-3.1-8b", "mistral-small", "some-unknown-model"):
        d = limiter.acquire(p, {"requests": 1, "tokens": 10}, model=model)
        assert d.allowed, model
    assert remaining(limiter, p)["rpd"] == 7197


def test_go_has_premium_models_tools_images_and_search(limiter: quota.Limiter) -> None:
    p = who("go")
    for model in ("gpt-5.5", "claude-opus-4.8", "gemini-3.1-pro-preview", "small-model"):
        d = limiter.acquire(
            p,
            {"requests": 1, "tokens": 10, "google_search": 1},
            model=model,
            features={"tools", "images", "google_search", "url_context"},
        )
        assert d.allowed, (model, d.denied_by)


# -- credits --------------------------------------------------------------------------------


def test_go_credits_are_spent_by_premium_calls(limiter: quota.Limiter, zylo: quota.Catalog) -> None:
    p = who("go")
    assert remaining(limiter, p)["credits"] == 10_000_000
    estimate = zylo.price("gpt-5.5", 1000, 500)
    d = limiter.acquire(
        p, {"requests": 1, "tokens": 1500, "credits": estimate}, model="gpt-5.5", request_id="c1"
    )
    assert d.allowed and d.state("credits").remaining == 10_000_000 - 6250
    actual = zylo.price("gpt-5.5", 1000, 210)
    assert limiter.settle(d, {"tokens": 1210, "credits": actual}) is True
    assert remaining(limiter, p)["credits"] == 10_000_000 - 3350
    assert remaining(limiter, p)["tpd"] == 512_000 - 1210

    # The balance cannot cover the estimate: 402, retrying will not help.
    before = limiter.peek(p)
    d = limiter.acquire(p, {"requests": 1, "credits": 9_996_651}, model="gpt-5.5")
    assert not d.allowed
    assert d.status == 402
    assert d.denied_by == "credits"
    assert d.code == "insufficient_quota"
    assert d.retry_after is None
    assert "Retry-After" not in d.headers()
    body = d.error_body()
    assert body is not None and body["error"]["type"] == "insufficient_quota"
    assert limiter.peek(p) == before

    d = limiter.acquire(p, {"requests": 1, "credits": 9_996_650}, model="gpt-5.5")
    assert d.allowed and d.state("credits").remaining == 0
    assert not limiter.acquire(p, {"requests": 1, "credits": 1}).allowed


def test_credits_402_beats_a_429_with_a_finite_retry(
    limiter: quota.Limiter, clock: FakeClock
) -> None:
    p = who("go")
    for _ in range(10):
        limiter.acquire(p, {"google_search": 1})
    d = limiter.acquire(p, {"google_search": 1, "credits": 10_000_001})
    assert not d.allowed
    assert d.denied_by == "credits"  # never fits: binds longer than the minute
    assert d.status == 402
    assert d.retry_after is None


def test_settle_can_drive_the_balance_negative_then_top_up(
    limiter: quota.Limiter,
) -> None:
    p = who("go")
    d = limiter.acquire(p, {"requests": 1, "credits": 9_000_000}, request_id="big")
    assert d.allowed
    assert limiter.settle(d, {"credits": 12_000_000}) is True  # spent more than estimated
    d = limiter.acquire(p, {"requests": 1, "credits": 1})
    assert not d.allowed and d.status == 402 and d.denied_by == "credits"
    assert d.state("credits").remaining == -2_000_000  # the debt shows, signed
    d = limiter.acquire(p, {"requests": 1, "credits": 0})  # even a zero estimate while in debt
    assert not d.allowed and d.status == 402
    # Requests without a credit cost (basic-tier models) still pass.
    assert limiter.acquire(p, {"requests": 1, "tokens": 10}).allowed

    assert limiter.top_up(p, "credits", 1_000_000) == -1_000_000
    assert not limiter.acquire(p, {"credits": 1}).allowed
    assert limiter.top_up(p, "credits", 5_000_000) == 4_000_000
    d = limiter.acquire(p, {"requests": 1, "credits": 4_000_000})
    assert d.allowed and d.state("credits").remaining == 0


def test_top_up_errors(limiter: quota.Limiter) -> None:
    with pytest.raises(quota.CostError, match=r"plan 'basic' has no balance on meter 'credits'"):
        limiter.top_up(who("basic"), "credits", 1_000_000)
    p = who("go")
    for bad in (0, -5, 1.5, True):
        with pytest.raises(quota.CostError, match="positive integer"):
            limiter.top_up(p, "credits", bad)  # type: ignore[arg-type]
    assert remaining(limiter, p)["credits"] == 10_000_000
    with pytest.raises(quota.UnknownPlanError, match="'platinum'"):
        limiter.top_up(who("platinum"), "credits", 1)


def test_credit_grants_per_plan(limiter: quota.Limiter) -> None:
    grants = {
        plan: remaining(limiter, who(plan, account=f"acct_{plan}"))["credits"]
        for plan in ("go", "pro", "mega", "enterprise")
    }
    assert grants == {
        "go": 10_000_000,
        "pro": 50_000_000,
        "mega": 200_000_000,
        "enterprise": 400_000_000,
    }


# -- enterprise -----------------------------------------------------------------------------


def test_enterprise_is_never_denied_on_requests_or_tokens(
    limiter: quota.Limiter, clock: FakeClock
) -> None:
    p = who("enterprise")
    for i in range(5000):
        d = limiter.acquire(
            p,
            {"requests": 1, "tokens": 2_000_000},
            model="claude-opus-4.8",
            features={"tools", "images", "code_execution"},
        )
        assert d.allowed, i
        if i % 1000 == 999:
            clock.advance(1)
    assert d.states == ()  # no limit applies to these meters
    # Tool budgets still apply to enterprise.
    for _ in range(10):
        assert limiter.acquire(p, {"url_context": 1}).allowed
    d = limiter.acquire(p, {"url_context": 1})
    assert not d.allowed and d.denied_by == "search"


def test_enterprise_settle_of_an_unlimited_request_succeeds(limiter: quota.Limiter) -> None:
    p = who("enterprise")
    d = limiter.acquire(p, {"requests": 1, "tokens": 5000}, request_id="ent-1")
    assert d.allowed and d.reservation is not None
    assert limiter.settle(d, {"tokens": 4000}) is True


# -- malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cost", "match"),
    [
        ({"requests": 1, "tokens": -5}, r"'tokens' must not be negative, got -5"),
        ({"requests": 1, "tokens": 1.5}, r"'tokens' must be an integer, got 1.5"),
        ({"requests": True}, r"'requests' must be an integer, got True"),
        ({"requests": "1"}, r"'requests' must be an integer, got '1'"),
        ({"requests": 1, "tokenz": 10}, r"unknown meter 'tokenz'"),
    ],
)
def test_malformed_costs_raise_and_charge_nothing(
    limiter: quota.Limiter, cost: dict[str, object], match: str
) -> None:
    p = who("basic")
    before = limiter.peek(p)
    with pytest.raises(quota.CostError, match=match):
        limiter.acquire(p, cost)  # type: ignore[arg-type]
    assert limiter.peek(p) == before


def test_malformed_settle_raises_and_changes_nothing(limiter: quota.Limiter) -> None:
    p = who("basic")
    d = limiter.acquire(p, {"requests": 1, "tokens": 1500})
    before = limiter.peek(p)
    with pytest.raises(quota.CostError, match="must not be negative"):
        limiter.settle(d, {"tokens": -1})
    with pytest.raises(quota.CostError, match="unknown meter 'tokenz'"):
        limiter.settle(d, {"tokenz": 1})
    with pytest.raises(quota.CostError, match="request_id must be a non-empty string"):
        limiter.acquire(p, {"requests": 1}, request_id="")
    assert limiter.peek(p) == before
    assert limiter.settle(d, {"tokens": 1000}) is True  # still open after the errors


def test_unknown_plan_raises(limiter: quota.Limiter) -> None:
    p = who("platinum")
    with pytest.raises(quota.UnknownPlanError) as info:
        limiter.acquire(p, {"requests": 1})
    assert str(info.value) == (
        "unknown plan 'platinum'; this catalog has: basic, enterprise, go, mega, pro"
    )
    assert isinstance(info.value, quota.QuotaError)
    with pytest.raises(quota.UnknownPlanError, match="'platinum'"):
        limiter.peek(p)
    assert remaining(limiter, who("basic", key=None)) == {"rpm": 10, "rpd": 7200, "tpd": 200_000}


# -- plan changes ---------------------------------------------------------------------------


def test_upgrade_basic_to_go_keeps_the_days_usage(limiter: quota.Limiter, clock: FakeClock) -> None:
    basic = who("basic")
    for _ in range(5):
        assert limiter.acquire(basic, {"requests": 1, "tokens": 1000}).allowed
    go = who("go")  # same account, upgraded
    state = remaining(limiter, go)
    assert state["rpd"] == 28_800 - 5
    assert state["tpd"] == 512_000 - 5000
    assert state["credits"] == 10_000_000
    d = limiter.acquire(go, {"requests": 1}, model="gpt-5.5")
    assert d.allowed and d.state("rpd").remaining == 28_794


def test_downgrade_go_to_basic_keeps_the_days_usage(limiter: quota.Limiter) -> None:
    go = who("go")
    assert limiter.acquire(go, {"requests": 7200, "tokens": 150_000}).allowed
    basic = who("basic")
    d = limiter.acquire(basic, {"requests": 1})
    assert not d.allowed and d.denied_by == "rpd" and d.retry_after == DAY
    d = limiter.acquire(basic, {"tokens": 50_001})
    assert not d.allowed and d.denied_by == "tpd"
