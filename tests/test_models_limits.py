"""Per-model limits (``Limit.models``): a limit that counts and checks only requests for the
models it names (ids, globs or tiers), inside the same all-or-nothing decision; through the
plain API on every engine, and over HTTP with the OpenAI SDK through the middleware."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from conftest import FakeClock, storage_url
from http_servers import BACKENDS, AppSlot, limiter_pair

import quota
from quota.cli.upstream import StandInUpstream

#: "claude-opus tokens 200,000/minute" beside the plan's daily caps.
CATALOG: dict[str, Any] = {
    "name": "per-model",
    "meters": {"names": ["requests", "tokens"]},
    "models": {
        "claude-opus-4.8": {"tier": "frontier"},
        "gpt-5.5": {"tier": "frontier"},
        "gpt-5.5-mini": {"tier": "cheap"},
    },
    "default_tier": "cheap",
    "plans": {
        "pro": {
            "models": ["*"],
            "limits": [
                {"name": "rpd", "meter": "requests", "rate": "1000/day", "algorithm": "calendar"},
                {"name": "tpd", "meter": "tokens", "rate": "5000000/day", "algorithm": "calendar"},
                {
                    "name": "opus_tpm",
                    "meter": "tokens",
                    "rate": "200000/minute",
                    "models": ["claude-opus-*"],
                },
                {
                    "name": "frontier_rpm",
                    "meter": "requests",
                    "rate": "3/minute",
                    "models": ["frontier"],
                },
                {"name": "gpt_rpm", "meter": "requests", "rate": "5/minute", "models": ["gpt-5.5"]},
            ],
        }
    },
}
OPUS, GPT, MINI = "claude-opus-4.8", "gpt-5.5", "gpt-5.5-mini"


@pytest.fixture(scope="module")
def catalog() -> quota.Catalog:
    return quota.Catalog.load(CATALOG)


@pytest.fixture
def limiter(catalog: quota.Catalog, clock: FakeClock, storage: str) -> Iterator[quota.Limiter]:
    with quota.Limiter(catalog, storage, clock=clock) as lim:
        yield lim


def names(d: quota.Decision) -> list[str]:
    return [s.name for s in d.states]


WHO = quota.Principal(account="acct", plan="pro")


def test_opus_hits_its_cap_while_a_cheaper_model_passes(limiter: quota.Limiter) -> None:
    d = limiter.acquire(WHO, {"requests": 1, "tokens": 150_000}, model=OPUS)
    assert d.allowed and names(d) == ["rpd", "tpd", "opus_tpm", "frontier_rpm"]
    opus = limiter.acquire(WHO, {"requests": 1, "tokens": 60_000}, model=OPUS)
    assert not opus.allowed and opus.status == 429 and opus.denied_by == "opus_tpm"
    assert "limit 'opus_tpm' reached: 200000/minute tokens on plan 'pro'" in (opus.message or "")
    assert '"opus_tpm";q=200000;w=60' in opus.headers()["RateLimit-Policy"]
    # The same account, a cheaper model: the opus cap is neither checked nor charged.
    mini = limiter.acquire(WHO, {"requests": 1, "tokens": 60_000}, model=MINI)
    assert mini.allowed and names(mini) == ["rpd", "tpd"]
    assert "opus_tpm" not in mini.headers()["RateLimit-Policy"]
    assert {s.name: s.remaining for s in mini.states} == {"rpd": 998, "tpd": 4_790_000}
    # The denied opus request charged nothing anywhere; what is left of the cap is still there.
    left = limiter.acquire(WHO, {"requests": 1, "tokens": 50_000}, model=OPUS)
    assert left.allowed and {s.name: s.remaining for s in left.states}["opus_tpm"] == 0


def test_ids_globs_and_tiers_match_as_entitlements_do(limiter: quota.Limiter) -> None:
    cost = {"requests": 1}
    assert names(limiter.acquire(WHO, cost, model=GPT)) == ["rpd", "frontier_rpm", "gpt_rpm"]
    assert names(limiter.acquire(WHO, cost, model=OPUS)) == ["rpd", "frontier_rpm"]
    assert names(limiter.acquire(WHO, cost, model=MINI)) == ["rpd"]  # a tier of its own
    assert names(limiter.acquire(WHO, cost, model="claude-opus-5")) == ["rpd"]  # glob, not tier
    assert limiter.acquire(WHO, cost, model=GPT).allowed  # the frontier tier's third
    d = limiter.acquire(WHO, cost, model=GPT)
    assert not d.allowed and d.denied_by == "frontier_rpm"  # 3 a minute for the tier, shared
    # A request without a model meets no per-model limit.
    assert names(limiter.acquire(WHO, {"requests": 1, "tokens": 10})) == ["rpd", "tpd"]


def test_peek_shows_per_model_limits_for_a_model_only(
    limiter: quota.Limiter, clock: FakeClock
) -> None:
    limiter.acquire(WHO, {"requests": 1, "tokens": 120_000}, model=OPUS)
    assert [s.name for s in limiter.peek(WHO)] == ["rpd", "tpd"]
    states = {s.name: s for s in limiter.peek(WHO, model=OPUS)}
    assert list(states) == ["rpd", "tpd", "opus_tpm", "frontier_rpm"]
    assert states["opus_tpm"].remaining == 80_000 and states["frontier_rpm"].remaining == 2
    clock.advance(60)
    assert {s.name: s.remaining for s in limiter.peek(WHO, model=OPUS)}["opus_tpm"] == 200_000


def test_settle_and_release_reach_the_per_model_limit(limiter: quota.Limiter) -> None:
    d = limiter.acquire(WHO, {"requests": 1, "tokens": 190_000}, model=OPUS, request_id="r1")
    assert d.allowed
    limiter.settle(d, {"tokens": 10_000})
    assert {s.name: s.remaining for s in limiter.peek(WHO, model=OPUS)}["opus_tpm"] == 190_000
    d = limiter.acquire(WHO, {"requests": 1, "tokens": 190_000}, model=OPUS)
    assert d.allowed
    limiter.release(d)
    assert {s.name: s.remaining for s in limiter.peek(WHO, model=OPUS)}["opus_tpm"] == 190_000


def test_async_limiter_selects_per_model_limits_too(
    catalog: quota.Catalog, clock: FakeClock
) -> None:
    import asyncio

    async def play() -> tuple[list[str], list[str]]:
        async with quota.AsyncLimiter(catalog, "memory://", clock=clock) as lim:
            opus = await lim.acquire(WHO, {"tokens": 10}, model=OPUS)
            mini = await lim.acquire(WHO, {"tokens": 10}, model=MINI)
            return names(opus), names(mini)

    assert asyncio.run(play()) == (["tpd", "opus_tpm"], ["tpd"])


# -- over HTTP: the openai profile passes the model ----------------------------------------


@pytest.fixture(params=BACKENDS)
def gateway(
    request: pytest.FixtureRequest,
    server: tuple[AppSlot, str],
    clock: FakeClock,
    catalog: quota.Catalog,
) -> Iterator[tuple[str, quota.Limiter, quota.Principal]]:
    slot, url = server
    alimiter, limiter = limiter_pair(catalog, storage_url(request, request.param), clock)
    who = quota.Principal(account=f"acct-{uuid.uuid4().hex[:8]}", plan="pro", key="sk-pro")
    slot.app = quota.QuotaMiddleware(
        StandInUpstream(), limiter=alimiter, resolve={"sk-pro": who}.get
    )
    yield url, limiter, who
    limiter.close()


def test_http_opus_denied_by_its_cap_while_gpt_mini_passes(
    gateway: tuple[str, quota.Limiter, quota.Principal],
) -> None:
    url, limiter, who = gateway
    assert limiter.acquire(who, {"tokens": 199_000}, model=OPUS).allowed  # the cap nearly spent
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-pro", max_retries=0, timeout=10)
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=OPUS, messages=messages, max_tokens=2000)
    response = info.value.response
    assert response.status_code == 429 and '"opus_tpm";r=1000' in response.headers["ratelimit"]
    assert response.json()["error"]["message"].startswith("limit 'opus_tpm' reached")
    raw = client.chat.completions.with_raw_response.create(
        model=MINI, messages=messages, max_tokens=2000
    )
    assert raw.http_response.status_code == 200
    assert "opus_tpm" not in raw.headers["ratelimit-policy"]
    assert '"rpd";r=999' in raw.headers["ratelimit"]  # the denied opus call charged nothing
