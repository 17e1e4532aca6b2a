"""``GET /v1/models`` answered by the middleware from the catalog (``models="catalog"`` or a list
of served ids): over a real uvicorn, with the official ``openai`` client and httpx, on the Zylo
catalog; the memory engine on a FakeClock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from conftest import FakeClock
from http_servers import AppSlot, limiter_pair, uvicorn_server

import quota
from quota.asgi.models import ModelList, model_list, models_target
from quota.cli.serve import Gateway as ServeGateway
from quota.cli.serve import demo_keys
from quota.cli.upstream import DEFAULT_MODELS, StandInUpstream

ZYLO = quota.Catalog.load("zylo")
PREMIUM = ["claude-opus-4.8", "gpt-5.5", "gemini-3.1-pro-preview"]  # the catalog's order
BASIC = "llama-3.1-8b"  # served by the upstream, unlisted: the default tier, basic


@dataclass
class Gateway:
    url: str
    limiter: quota.Limiter
    keys: dict[str, quota.Principal]

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=10)

    def remaining(self, key: str) -> dict[str, int]:
        who = self.keys[key].model_copy(update={"key": key})
        return {s.name: s.remaining for s in self.limiter.peek(who)}


def gateway(server: tuple[AppSlot, str], clock: FakeClock, models: Any) -> Iterator[Gateway]:
    slot, url = server
    alimiter, limiter = limiter_pair(ZYLO, "memory://", clock)
    tag = uuid.uuid4().hex[:8]
    keys = {f"sk-{p}": quota.Principal(account=f"acct-{p}-{tag}", plan=p) for p in ZYLO.plans}
    keys["sk-deal"] = quota.Principal(account=f"deal-{tag}", plan="go", overrides={"rpd": "5/day"})
    slot.app = quota.QuotaMiddleware(
        StandInUpstream(), limiter=alimiter, resolve=keys.get, models=models
    )
    yield Gateway(url, limiter, keys)
    limiter.close()


@pytest.fixture
def gw(server: tuple[AppSlot, str], clock: FakeClock) -> Iterator[Gateway]:
    """The middleware answering with the catalog's ids and the upstream's unlisted one."""
    yield from gateway(server, clock, [*DEFAULT_MODELS])


@pytest.fixture
def catalog_only(server: tuple[AppSlot, str], clock: FakeClock) -> Iterator[Gateway]:
    """``models="catalog"``: only what ``[models]`` lists."""
    yield from gateway(server, clock, "catalog")


def ids(client: openai.OpenAI) -> list[str]:
    return [m.id for m in client.models.list()]


def test_basic_sees_basic_models_and_go_sees_premium_too(gw: Gateway) -> None:
    basic = gw.client("sk-basic").models.list()
    assert [(m.id, m.object, m.owned_by, m.created) for m in basic] == [
        (BASIC, "model", "zylo", 0)  # the catalog answered, not the stand-in upstream
    ]
    assert ids(gw.client("sk-go")) == [*PREMIUM, BASIC]
    assert ids(gw.client("sk-deal")) == [*PREMIUM, BASIC]  # overrides keep the plan's models
    for key, who in gw.keys.items():
        plan = ZYLO.plan(who.plan)
        listed = ids(gw.client(key))
        assert all(ZYLO.allows_model(plan, m) for m in listed), key
        assert set(listed) == {m for m in [*PREMIUM, BASIC] if ZYLO.allows_model(plan, m)}
        if "*" not in plan.models:  # enterprise: every model
            assert {ZYLO.tier_of(m) for m in listed} <= set(plan.models)


def test_catalog_mode_lists_only_the_catalog_ids(catalog_only: Gateway) -> None:
    assert ids(catalog_only.client("sk-basic")) == []  # Zylo lists premium models only
    assert ids(catalog_only.client("sk-pro")) == PREMIUM


def test_retrieve_answers_a_model_the_plan_may_call_and_404_otherwise(gw: Gateway) -> None:
    model = gw.client("sk-go").models.retrieve("gpt-5.5")
    assert (model.id, model.owned_by) == ("gpt-5.5", "zylo")
    assert gw.client("sk-basic").models.retrieve(BASIC).id == BASIC
    for key, name in [("sk-basic", "gpt-5.5"), ("sk-go", "no-such-model"), ("sk-go", "GPT-5.5")]:
        with pytest.raises(openai.NotFoundError) as info:
            gw.client(key).models.retrieve(name)
        response = info.value.response
        assert response.json() == {
            "error": {
                "message": f"The model '{name}' does not exist or you do not have access to it.",
                "type": "invalid_request_error",
                "param": None,
                "code": "model_not_found",
            }
        }
        assert response.headers["x-ratelimit-limit-requests"]  # a free endpoint's headers


def test_a_key_is_needed(gw: Gateway) -> None:
    for path in ("/v1/models", "/models", "/v1/models/gpt-5.5"):
        r = httpx.get(f"{gw.url}{path}")
        assert r.status_code == 401, path
        assert r.json()["error"]["code"] == "missing_api_key"
        assert r.headers["www-authenticate"].startswith("Bearer")
    with pytest.raises(openai.AuthenticationError) as info:
        gw.client("sk-nope").models.list()
    assert info.value.response.json()["error"]["code"] == "invalid_api_key"


def test_it_charges_nothing_and_carries_the_rate_limit_headers(gw: Gateway) -> None:
    before = gw.remaining("sk-basic")
    client = gw.client("sk-basic")
    for _ in range(12):  # more than basic's 10 requests a minute
        raw = client.models.with_raw_response.list()
        assert raw.headers["x-ratelimit-remaining-requests"] == "10"
        assert raw.headers["x-ratelimit-limit-requests"] == "10"
        assert "ratelimit" in raw.headers
    auth = {"Authorization": "Bearer sk-basic"}
    for path in ("/models", "/v1/models/", f"/v1/models/{BASIC}", "/V1/Models"):
        r = httpx.get(f"{gw.url}{path}", headers=auth)
        assert r.status_code == 200 and r.json()["object"] in ("list", "model"), path
    head = httpx.head(f"{gw.url}/v1/models", headers=auth)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["x-ratelimit-remaining-requests"] == "10"
    assert gw.remaining("sk-basic") == before
    assert httpx.post(f"{gw.url}/v1/models", headers=auth, json={}).status_code == 405


def test_the_default_lets_the_app_answer(server: tuple[AppSlot, str], clock: FakeClock) -> None:
    for gw in gateway(server, clock, "app"):
        listed = gw.client("sk-basic").models.list()
        assert [m.id for m in listed] == list(DEFAULT_MODELS)  # every model, as before
        assert {m.owned_by for m in listed} == {"stand-in"}


def test_quota_serve_answers_from_the_catalog(clock: FakeClock) -> None:
    limiter = quota.AsyncLimiter(ZYLO, "memory://", clock=clock)
    with uvicorn_server(ServeGateway(limiter, demo_keys(ZYLO, clock.now))) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-basic", max_retries=0)
        assert ids(client) == [BASIC]
        assert ids(client.with_options(api_key="sk-mega")) == [*PREMIUM, BASIC]
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("claude-opus-4.8")


def test_targets_and_options() -> None:
    assert models_target("/v1/models") == models_target("/models/") == ""
    assert models_target("/v1/models/Gpt-5.5") == "Gpt-5.5"  # the id as spelt
    assert models_target("/V1/MODELS/ft:gpt-4o:acme::x1") == "ft:gpt-4o:acme::x1"
    assert models_target("/v1/chat/completions") is None
    assert models_target("/v1beta/models/gemini:generateContent") is None
    assert model_list(ZYLO, "app") is None
    assert isinstance(model_list(ZYLO, "catalog"), ModelList)
    globbed = quota.Catalog.load(
        {
            "models": {"claude-*": {"tier": "premium"}, "opus-9": {"tier": "premium"}},
            "plans": {"p": {"models": ["basic"]}, "q": {"models": ["claude-*"]}},
        }
    )
    listed = ModelList(globbed, ["claude-9", "mini", "mini"])
    assert listed.ids == ("opus-9", "claude-9", "mini")  # globs are not ids; no repeats
    assert listed.allowed(globbed.plan("p")) == ("mini",)
    assert listed.allowed(globbed.plan("q")) == ("claude-9",)
    with pytest.raises(ValueError, match="'app', 'catalog'"):
        model_list(ZYLO, "all")
    with pytest.raises(ValueError, match="model ids"):
        model_list(ZYLO, ["gpt-5.5", ""])
