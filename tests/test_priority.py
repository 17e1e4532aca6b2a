"""Priority for shared capacity: Zylo's global ``upstream`` budget (2,000,000 premium tokens a
minute, 20% kept for plans of priority 10). At 85% of it, mega is admitted and go refused
with ``capacity_reserved``; through the plain API on every engine (injected clock), the asyncio
limiter, and over HTTP with the OpenAI SDK."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from conftest import FakeClock, storage_url
from http_servers import BACKENDS, AppSlot, limiter_pair

import quota
from quota.cli.upstream import StandInUpstream

GPT = "gpt-5.5"
RESERVED = "the 1,600,000 of 2,000,000 tokens/minute open to plan 'go' are used"


@pytest.fixture(scope="module")
def zylo() -> quota.Catalog:
    return quota.Catalog.load("zylo")


@pytest.fixture
def limiter(zylo: quota.Catalog, clock: FakeClock, storage: str) -> Iterator[quota.Limiter]:
    with quota.Limiter(zylo, storage, clock=clock) as lim:
        yield lim


def who(plan: str) -> quota.Principal:
    return quota.Principal(account=f"acct-{plan}", plan=plan)


def tokens(n: int) -> dict[str, int]:
    return {"requests": 1, "tokens": n}


def state(d: quota.Decision, name: str = "upstream") -> tuple[int, int]:
    s = next(s for s in d.states if s.name == name)
    return s.limit, s.remaining


def fill(limiter: quota.Limiter, n: int) -> None:
    """Premium tokens sent by mega accounts (each under its 5,000,000 a day)."""
    for i in range(0, n, 1_000_000):
        principal = quota.Principal(account=f"busy-{i}", plan="mega")
        assert limiter.acquire(principal, tokens(min(1_000_000, n - i)), model=GPT).allowed


def test_at_85_percent_mega_is_admitted_and_go_refused(limiter: quota.Limiter) -> None:
    fill(limiter, 1_700_000)
    go = limiter.acquire(who("go"), tokens(20_000), model=GPT)
    assert not go.allowed and go.status == 429 and go.denied_by == "upstream"
    assert go.code == "capacity_reserved"
    assert go.message is not None and go.message.startswith(f"limit 'upstream': {RESERVED}")
    assert "the rest is reserved for higher-priority plans; retry in" in go.message
    assert go.error_body()["error"]["code"] == "capacity_reserved"
    assert state(go) == (1_600_000, 0)  # the limit the plan may use
    headers = go.headers()
    assert '"upstream";q=1600000;w=60' in headers["RateLimit-Policy"]
    assert headers["x-ratelimit-limit-tokens"] == "1600000"
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    assert go.retry_after == pytest.approx(60.0)  # when the 1,700,000 leave the window
    pro = limiter.acquire(who("pro"), tokens(20_000), model=GPT)
    assert pro.code == "capacity_reserved"  # priority 0 too
    mega = limiter.acquire(who("mega"), tokens(20_000), model=GPT)
    assert mega.allowed and state(mega) == (2_000_000, 280_000)
    assert mega.headers()["x-ratelimit-limit-tokens"] == "2000000"  # the whole, for mega
    # A model outside the premium tier does not meet the limit at all.
    assert limiter.acquire(who("go"), tokens(20_000), model="llama-3.1-8b").allowed


def test_go_admitted_below_its_share_and_refused_past_it(
    limiter: quota.Limiter, clock: FakeClock
) -> None:
    fill(limiter, 1_500_000)
    d = limiter.acquire(who("go"), tokens(50_000), model=GPT)
    assert d.allowed and state(d) == (1_600_000, 50_000)
    # 150,000 more: over the open share, within the whole; told apart without a read.
    d = limiter.acquire(who("go"), tokens(150_000), model=GPT)
    assert d.code == "capacity_reserved" and state(d) == (1_600_000, 50_000)
    clock.advance(60)  # the window has moved on
    assert limiter.acquire(who("go"), tokens(150_000), model=GPT).allowed


def test_a_denial_the_whole_capacity_would_give_too_keeps_the_limits_code(
    limiter: quota.Limiter,
) -> None:
    fill(limiter, 1_990_000)
    go = limiter.acquire(who("go"), tokens(20_000), model=GPT)  # 2,010,000 > 2,000,000
    assert not go.allowed and go.denied_by == "upstream"
    assert go.code == "rate_limit_exceeded"
    assert go.message is not None and go.message.startswith(
        "limit 'upstream' reached: 2000000/minute tokens on plan 'go' (1,600,000 of them open"
    )
    mega = limiter.acquire(who("mega"), tokens(20_000), model=GPT)
    assert mega.code == "rate_limit_exceeded" and state(mega) == (2_000_000, 10_000)


def test_a_request_above_the_open_share_never_fits_for_go(
    limiter: quota.Limiter,
) -> None:
    # A go account whose deal allows 5,000,000 tokens a day: the upstream share binds.
    deal = quota.Principal(account="acct-go", plan="go", overrides={"tpd": "5000000/day"})
    go = limiter.acquire(deal, tokens(1_700_000), model=GPT)
    assert go.code == "capacity_reserved" and go.retry_after is None
    assert go.message is not None and go.message.endswith("retrying will not help")
    assert limiter.acquire(who("mega"), tokens(1_700_000), model=GPT).allowed


def test_repeated_go_denials_keep_saying_reserved(limiter: quota.Limiter) -> None:
    """A held-back limit's denial is not answered from the block cache (its code needs the
    store's answer), so every refusal says the same."""
    fill(limiter, 1_700_000)
    codes = {limiter.acquire(who("go"), tokens(20_000), model=GPT).code for _ in range(5)}
    assert codes == {"capacity_reserved"}


def test_enterprise_draws_on_the_capacity_in_shadow_and_is_never_refused(
    limiter: quota.Limiter,
) -> None:
    ent = quota.Principal(account="acct-ent", plan="enterprise")
    assert limiter.acquire(ent, tokens(1_700_000), model=GPT).allowed
    assert limiter.acquire(who("go"), tokens(20_000), model=GPT).code == "capacity_reserved"
    over = limiter.acquire(ent, tokens(1_000_000), model=GPT)
    assert over.allowed and over.shadow_denied == ("upstream",)


def test_async_limiter_tells_the_reserve_apart_too(zylo: quota.Catalog, clock: FakeClock) -> None:
    async def play() -> tuple[str | None, bool]:
        async with quota.AsyncLimiter(zylo, "memory://", clock=clock) as lim:
            busy = quota.Principal(account="busy", plan="mega")
            assert (await lim.acquire(busy, tokens(1_000_000), model=GPT)).allowed
            busy2 = quota.Principal(account="busy2", plan="mega")
            assert (await lim.acquire(busy2, tokens(700_000), model=GPT)).allowed
            go = await lim.acquire(who("go"), tokens(20_000), model=GPT)
            mega = await lim.acquire(who("mega"), tokens(20_000), model=GPT)
            return go.code, mega.allowed

    assert asyncio.run(play()) == ("capacity_reserved", True)


def test_overrides_hold_the_reserve_back_again(limiter: quota.Limiter) -> None:
    deal = quota.Principal(account="acct-deal", plan="go", overrides={"upstream": "1000000/minute"})
    d = limiter.acquire(deal, tokens(10_000), model=GPT)
    assert d.allowed and state(d) == (800_000, 790_000)
    vip = quota.Principal(account="acct-vip", plan="mega", overrides={"upstream": "1000000/minute"})
    assert state(limiter.acquire(vip, tokens(10_000), model=GPT)) == (1_000_000, 980_000)


# -- over HTTP -----------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def gateway(
    request: pytest.FixtureRequest, server: tuple[AppSlot, str], clock: FakeClock
) -> Iterator[tuple[str, quota.Limiter]]:
    slot, url = server
    catalog = quota.Catalog.load("zylo")
    alimiter, limiter = limiter_pair(catalog, storage_url(request, request.param), clock)
    tag = uuid.uuid4().hex[:8]
    keys = {f"sk-{p}": quota.Principal(account=f"{p}-{tag}", plan=p) for p in ("go", "mega")}
    slot.app = quota.QuotaMiddleware(StandInUpstream(), limiter=alimiter, resolve=keys.get)
    yield url, limiter
    limiter.close()


def chat(url: str, key: str) -> Any:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=10)
    return client.chat.completions.with_raw_response.create(
        model=GPT, messages=[{"role": "user", "content": "hi"}], max_tokens=4000
    )


def test_http_mega_admitted_and_go_refused_at_85_percent(
    gateway: tuple[str, quota.Limiter],
) -> None:
    url, limiter = gateway
    fill(limiter, 1_700_000)
    with pytest.raises(openai.RateLimitError) as info:
        chat(url, "sk-go")
    response = info.value.response
    error = response.json()["error"]
    assert error["code"] == "capacity_reserved" and RESERVED in error["message"]
    assert response.headers["x-ratelimit-limit-tokens"] == "1600000"
    assert response.headers["retry-after"] == "60"
    raw = chat(url, "sk-mega")
    assert raw.http_response.status_code == 200
    assert '"upstream";q=2000000;w=60' in raw.headers["ratelimit-policy"]
