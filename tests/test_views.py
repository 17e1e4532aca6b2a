"""``/stats`` and ``/validate``: the plain functions, then served by ``QuotaMiddleware(views=
True)`` under a real uvicorn server after a scripted day of HTTP traffic on each Zylo plan,
compared with what the responses said was decided and used."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import START, FakeClock, storage_url
from http_servers import BACKENDS, AppSlot, limiter_pair
from usage_day import PLANS, ZYLO, Ledger, play_day

import quota
from quota.backends.memory import AsyncMemoryBackend
from quota.cli.upstream import StandInUpstream
from quota.history import meters_of
from quota.views import astats, stats, validate

METERS = meters_of(ZYLO)
TODAY = START.date().isoformat()


# -- the plain functions --------------------------------------------------------------------


def test_validate_reports_plan_and_capabilities() -> None:
    assert validate(ZYLO, None) == {"object": "validation", "valid": False}
    basic = validate(ZYLO, quota.Principal(account="a", plan="basic"))
    assert basic["valid"] and basic["plan"]["name"] == "basic"
    caps = basic["capabilities"]
    assert caps["models"]["tiers"] == ["basic"] and caps["models"]["listed"] == []
    assert caps["features"] == dict.fromkeys(
        ["code_execution", "images", "priority", "search", "tools"], False
    )
    rpm = caps["limits"][0]
    assert (rpm["name"], rpm["rate"], rpm["limit"], rpm["window_seconds"]) == (
        "rpm",
        "10/minute",
        10,
        60,
    )
    pro = validate(ZYLO, quota.Principal(account="a", plan="pro"))["capabilities"]
    assert pro["features"]["code_execution"] and not pro["features"]["priority"]
    assert "gpt-5.5" in pro["models"]["listed"] and pro["models"]["tiers"] == ["basic", "premium"]
    credits = next(lim for lim in pro["limits"] if lim["name"] == "credits")
    assert credits == {
        "name": "credits",
        "meter": "credits",
        "algorithm": "balance",
        "grant": 50_000_000,
        "scope": "account",
    }
    rpd = next(lim for lim in pro["limits"] if lim["name"] == "rpd")
    assert rpd["rate"] == "43200/day" and rpd["per"] == "day"
    json.dumps(pro)  # JSON-ready
    with pytest.raises(quota.UnknownPlanError):
        validate(ZYLO, quota.Principal(account="a", plan="gold"))


@pytest.mark.parametrize("plan", PLANS)
def test_stats_after_a_day_agrees_with_the_decisions(
    clock: FakeClock, storage: str, plan: str
) -> None:
    who = quota.Principal(account=f"acct_stats_{plan}", plan=plan, key=f"sk-{plan}")
    ledger = Ledger(ZYLO)
    with quota.Limiter(ZYLO, storage, clock=clock) as lim:
        play_day(lim, clock, plan, who, ledger)
        clock.advance(3 * 3600)  # 03:00 the next day
        body = stats(lim, who)
        json.dumps(body)
        assert body["plan"]["name"] == plan
        assert body["now"] == "2026-03-11T03:00:00Z"
        used = ledger.totals(TODAY, METERS)
        assert body["usage"]["daily"][TODAY] == used
        assert body["usage"]["today"] == dict.fromkeys(METERS, 0)
        assert len(body["usage"]["daily"]) == 30 and body["usage"]["timezone"] == "UTC"
        grant = {"basic": None, "go": 10_000_000, "pro": 50_000_000}.get(plan, 0)
        if grant is None:
            assert body["credits"] is None
        elif grant:
            assert body["credits"] == {"balance": grant - used["credits"], "limit": grant}
        limits = {s["name"]: s for s in body["limits"]}
        assert "credits" not in limits and not any(n.startswith("@") for n in limits)
        if plan != "enterprise":  # yesterday's daily caps are fresh again
            assert limits["rpd"]["remaining"] == limits["rpd"]["limit"]
            assert limits["rpd"]["resets_in_seconds"] == 0
        assert limits["web_extract"]["window_seconds"] == 60
        # The async flavour gives the same body.
        engine: Any = storage
        if storage == "memory://":
            engine = AsyncMemoryBackend()
            engine.engine = lim.backend
        alim = quota.AsyncLimiter(ZYLO, engine, clock=clock)

        async def run() -> dict[str, Any]:
            async with alim:
                return await astats(alim, who)

        assert asyncio.run(run()) == body


# -- served by the middleware, over real HTTP -----------------------------------------------


@pytest.fixture(params=BACKENDS)
def gateway(
    request: pytest.FixtureRequest, server: tuple[AppSlot, str], clock: FakeClock
) -> Iterator[tuple[httpx.Client, quota.Limiter, dict[str, quota.Principal]]]:
    slot, url = server
    alimiter, limiter = limiter_pair(ZYLO, storage_url(request, request.param), clock)
    tag = uuid.uuid4().hex[:8]
    keys = {f"sk-{p}-{tag}": quota.Principal(account=f"acct-{p}-{tag}", plan=p) for p in PLANS}
    slot.app = quota.QuotaMiddleware(
        StandInUpstream(), limiter=alimiter, resolve=keys.get, views=True
    )
    with httpx.Client(base_url=url, timeout=10) as http:
        yield http, limiter, keys
    limiter.close()


def http_day(
    http: httpx.Client, clock: FakeClock, key: str, plan: str
) -> tuple[Counter[str], Counter[int]]:
    """Traffic through the gateway; returns the usage the responses report, and the statuses."""
    auth = {"Authorization": f"Bearer {key}"}
    used: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    model = "llama-3.1-8b" if plan == "basic" else "gpt-5.5"
    clock.advance(9 * 3600)
    for i in range(16):
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": "hi " * i}],
        }
        if plan != "basic":
            body["tools"] = [{"type": "google_search"}]
        fail = {"X-Upstream-Status": "503"} if i % 4 == 3 else {}
        r = http.post("/v1/chat/completions", json=body, headers={**auth, **fail})
        statuses[r.status_code] += 1
        if r.status_code in (200, 503):  # admitted (Zylo counts failures; tokens settle to 0)
            used["requests"] += 1
            used["search"] += plan != "basic"
        if r.status_code == 200:
            u = r.json()["usage"]
            used["tokens"] += u["total_tokens"]
            if plan != "basic":
                used["credits"] += ZYLO.price(model, u["prompt_tokens"], u["completion_tokens"])
        clock.advance(2)
    for _ in range(12):
        r = http.post("/v1/web-extract", json={"url": "https://example.org"}, headers=auth)
        statuses[r.status_code] += 1
        if r.status_code == 200:
            used["requests"] += 1
            used["web_extract"] += 1
    for _ in range(3):  # the views themselves are free
        assert http.get("/stats", headers=auth).status_code == 200
        assert http.get("/v1/validate", headers=auth).status_code == 200
    return used, statuses


@pytest.mark.parametrize("plan", PLANS)
def test_views_over_http_agree_with_the_responses(
    gateway: tuple[httpx.Client, quota.Limiter, dict[str, quota.Principal]],
    clock: FakeClock,
    plan: str,
) -> None:
    http, limiter, keys = gateway
    key = next(k for k in keys if k.startswith(f"sk-{plan}-"))
    used, statuses = http_day(http, clock, key, plan)
    assert statuses[429] >= 2  # basic's rpm, the paid plans' search, everyone's web_extract
    auth = {"Authorization": f"Bearer {key}"}

    r = http.get("/stats", headers=auth)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    today = body["usage"]["today"]
    assert today == {m: used[m] for m in METERS}
    assert body["usage"]["daily"][TODAY] == today and len(body["usage"]["daily"]) == 30
    limits = {s["name"]: s for s in body["limits"]}
    if plan != "enterprise":
        assert limits["rpd"]["remaining"] == limits["rpd"]["limit"] - used["requests"]
        assert limits["tpd"]["remaining"] == limits["tpd"]["limit"] - used["tokens"]
        assert limits["tpd"]["resets_at"] == "2026-03-11T00:00:00Z"
        assert limits["tpd"]["resets_in_seconds"] == pytest.approx(15 * 3600, abs=120)
    if plan != "basic":
        assert body["credits"]["balance"] == body["credits"]["limit"] - used["credits"]
    assert "ratelimit-policy" in r.headers  # the account's state as headers, as free paths
    who = keys[key].model_copy(update={"key": key})  # as the middleware completes it
    assert body == stats(limiter, who)  # the plain function says the same
    assert {s["name"] for s in body["limits"]} >= {"web_extract"}  # per-key limits too

    r = http.get("/validate", headers=auth)
    assert r.status_code == 200
    assert r.json() == validate(ZYLO, keys[key])
    assert r.json()["plan"]["name"] == plan


def test_views_refuse_missing_and_unknown_keys(
    gateway: tuple[httpx.Client, quota.Limiter, dict[str, quota.Principal]],
) -> None:
    http, _, _ = gateway
    r = http.get("/validate", headers={"Authorization": "Bearer sk-nobody"})
    assert r.status_code == 401 and r.json()["valid"] is False
    assert r.json()["error"]["code"] == "invalid_api_key"
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = http.get("/validate")
    assert r.status_code == 401 and r.json()["valid"] is False
    assert r.json()["error"]["code"] == "missing_api_key"
    r = http.get("/stats", headers={"X-API-Key": "sk-nobody"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert http.get("/stats").status_code == 401


def test_views_are_off_by_default_and_paths_can_be_chosen() -> None:
    from quota.asgi.views import view_paths

    assert view_paths(False) == {}
    assert view_paths(True)["/v1/stats"] == "stats"
    assert view_paths({"/account/usage/": "stats"}) == {"/account/usage": "stats"}
    with pytest.raises(ValueError, match="'stats' or 'validate'"):
        view_paths({"/x": "usage"})
