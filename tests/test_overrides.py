"""Per-principal overrides (custom deals): ``Principal(overrides=...)`` changes limits of its
plan for that principal only, validated against the catalog with plan-file wording; the
account's state carries over as on a plan change. And examples/deals.toml with its keys."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeClock

import quota
from quota.cli.serve import load_keys
from quota.overrides import apply, plan_of
from quota.views import validate

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CATALOG: dict[str, Any] = {
    "name": "deals",
    "meters": {"names": ["requests", "tokens", "credits", "calls"]},
    "plans": {
        "basic": {
            "limits": [
                {"name": "rpm", "meter": "requests", "rate": "1000/minute"},
                {"name": "rpd", "meter": "requests", "rate": "100/day", "algorithm": "calendar"},
                {"name": "credits", "meter": "credits", "algorithm": "balance", "grant": 500},
                {"name": "slots", "meter": "calls", "algorithm": "concurrency", "limit": 50},
            ]
        }
    },
}
ONE = {"requests": 1}


@pytest.fixture(scope="module")
def catalog() -> quota.Catalog:
    return quota.Catalog.load(CATALOG)


@pytest.fixture
def limiter(catalog: quota.Catalog, clock: FakeClock, storage: str) -> Iterator[quota.Limiter]:
    with quota.Limiter(catalog, storage, clock=clock) as lim:
        yield lim


def spend(limiter: quota.Limiter, who: quota.Principal, n: int) -> quota.Decision:
    """``n`` requests, the last decision."""
    d = limiter.acquire(who, ONE)
    for _ in range(n - 1):
        assert d.allowed
        d = limiter.acquire(who, ONE)
    return d


def test_an_override_raises_one_accounts_cap_and_state_carries_over(
    limiter: quota.Limiter,
) -> None:
    plain = quota.Principal(account="acct_a", plan="basic")
    other = quota.Principal(account="acct_b", plan="basic")
    assert spend(limiter, plain, 50).allowed  # 50 of 100 counted before the deal
    deal = quota.Principal(account="acct_a", plan="basic", overrides={"rpd": "150/day"})
    d = spend(limiter, deal, 100)  # 50 + 100 = 150
    assert d.allowed and {s.name: (s.limit, s.remaining) for s in d.states}["rpd"] == (150, 0)
    refused = limiter.acquire(deal, ONE)
    assert not refused.allowed and refused.denied_by == "rpd"
    assert "limit 'rpd' reached: 150/day requests on plan 'basic'" in (refused.message or "")
    # The other account on the same plan keeps the plan's cap.
    last = spend(limiter, other, 100)
    assert last.allowed and not limiter.acquire(other, ONE).allowed
    # Back without the deal: the same count against the plan's 100.
    assert {s.name: s.remaining for s in limiter.peek(plain)}["rpd"] == 0
    assert {s.name: (s.limit, s.remaining) for s in limiter.peek(deal)}["rpd"] == (150, 0)


def test_a_mapping_changes_fields_and_limit_alone_keeps_the_period(
    limiter: quota.Limiter, catalog: quota.Catalog
) -> None:
    deal = quota.Principal(
        account="acct_c",
        plan="basic",
        overrides={
            "rpd": {"limit": 3, "code": "deal_cap", "message": "your deal allows 3 a day"},
            "credits": {"grant": 9000},
            "slots": {"limit": 2},
        },
    )
    plan = plan_of(catalog, deal)
    rpd = next(lim for lim in plan.limits if lim.name == "rpd")
    assert (rpd.amount, rpd.unit, rpd.algorithm) == (3, "day", "calendar")
    assert spend(limiter, deal, 3).allowed
    d = limiter.acquire(deal, ONE)
    assert (d.code, d.message) == ("deal_cap", "your deal allows 3 a day")
    assert limiter.top_up(deal, "credits", 1) == 9001  # the balance starts at the deal's grant
    slots = {s.name: s.limit for s in limiter.peek(deal)}
    assert slots["slots"] == 2 and slots["rpm"] == 1000


def test_the_effective_plan_is_built_once_per_plan_and_overrides(catalog: quota.Catalog) -> None:
    one = quota.Principal(account="x", plan="basic", overrides={"rpd": "150/day"})
    two = quota.Principal(account="y", plan="basic", overrides={"rpd": "150/day"})
    assert plan_of(catalog, one) is plan_of(catalog, two)  # one deal, shared
    assert plan_of(catalog, quota.Principal(account="x", plan="basic")) is catalog.plan("basic")
    assert catalog.plan("basic").limits[1].amount == 100  # the catalog is untouched


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"rpx": "5/day"},
            "plan 'basic' has no limit 'rpx' to override; its limits: rpm, rpd, credits, slots",
        ),
        (
            {"rpd": "10/fortnight"},
            "plan 'basic', limit 'rpd', field 'rate': bad rate '10/fortnight': write it like",
        ),
        (
            {"rpd": {"meter": "tokens"}},
            "plan 'basic', limit 'rpd', field 'meter': an override cannot change a limit's meter",
        ),
        (
            {"rpd": {"algorithm": "sliding_window", "scope": "key"}},
            "plan 'basic', limit 'rpd', field 'scope': an override cannot change a limit's scope",
        ),
        (
            {"rpm": {"precision": 0}},
            "plan 'basic', limit 'rpm', field 'precision': Input should be greater than or equal",
        ),
        ({"rpm": {"burst": 5}}, "plan 'basic', limit 'rpm', field 'burst': 'burst' applies to"),
        ({"rpm": {"colour": "red"}}, "plan 'basic', limit 'rpm', field 'colour': unknown field"),
        ({"credits": "5/day"}, "limit 'credits', field 'rate': a balance has no 'rate'"),
        ({"rpm": {"reserve": {"share": 2, "priority": 1}}}, "field 'reserve.share': Input should"),
    ],
)
def test_bad_overrides_read_like_plan_file_errors(
    limiter: quota.Limiter, overrides: dict[str, Any], expected: str
) -> None:
    deal = quota.Principal(account="acct_d", plan="basic", overrides=overrides)
    with pytest.raises(quota.CatalogError) as info:
        limiter.acquire(deal, ONE)
    text = str(info.value)
    assert text.startswith("the overrides of account 'acct_d' are invalid:\n  - ")
    assert expected in text
    with pytest.raises(quota.CatalogError):
        limiter.peek(deal)


def test_every_problem_is_listed_at_once(catalog: quota.Catalog) -> None:
    with pytest.raises(quota.CatalogError) as info:
        apply(catalog.plan("basic"), {"rpx": "1/day", "rpd": {"name": "x", "meter": "tokens"}})
    assert str(info.value).count("\n  - ") == 3


def test_validate_shows_the_deal(catalog: quota.Catalog) -> None:
    deal = quota.Principal(account="a", plan="basic", overrides={"rpd": {"limit": 150}})
    body = validate(catalog, deal)
    assert body["overrides"] == {"rpd": {"limit": 150}}
    rpd = next(lim for lim in body["capabilities"]["limits"] if lim["name"] == "rpd")
    assert (rpd["limit"], rpd["rate"]) == (150, "150/day")
    assert "overrides" not in validate(catalog, quota.Principal(account="a", plan="basic"))


def test_the_middleware_serves_a_deal_from_its_resolver(
    catalog: quota.Catalog, clock: FakeClock
) -> None:
    import asyncio

    import httpx

    deal = quota.Principal(account="acct_e", plan="basic", overrides={"rpd": "2/day"})
    limiter = quota.AsyncLimiter(catalog, "memory://", clock=clock)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    mw = quota.QuotaMiddleware(app, limiter=limiter, resolve={"sk-e": deal}.get, views=True)

    async def play() -> list[int]:
        transport = httpx.ASGITransport(app=mw)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            auth = {"Authorization": "Bearer sk-e"}
            codes = [(await http.post("/v1/embeddings", json={"input": "x"}, headers=auth))
                     .status_code for _ in range(3)]  # fmt: skip
            body = (await http.get("/validate", headers=auth)).json()
            assert body["overrides"] == {"rpd": "2/day"}
            return codes

    assert asyncio.run(play()) == [200, 200, 429]


def test_a_deal_that_does_not_fit_is_a_503_on_every_route(catalog: quota.Catalog) -> None:
    """The resolver returned a principal whose overrides the catalog refuses: the gateway's
    configuration is wrong, not the client's request; nothing reaches the app or is charged."""
    import asyncio

    import httpx

    bad = quota.Principal(account="acct_bad", plan="basic", overrides={"rpd": "often"})
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    limiter = quota.AsyncLimiter(catalog, "memory://")
    mw = quota.QuotaMiddleware(app, limiter=limiter, resolve={"sk-bad": bad}.get, views=True)

    async def play() -> list[tuple[int, str]]:
        transport = httpx.ASGITransport(app=mw)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            auth = {"Authorization": "Bearer sk-bad"}
            replies = [
                await http.post("/v1/embeddings", json={"input": "x"}, headers=auth),
                await http.get("/validate", headers=auth),
                await http.get("/stats", headers=auth),
            ]
        return [(r.status_code, r.json()["error"]["code"]) for r in replies]

    assert asyncio.run(play()) == [(503, "plan_unavailable")] * 3
    assert reached == []


# -- plan files and keys files --------------------------------------------------------------


def quota_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quota", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "250"},
    )


def test_quota_check_accepts_the_deals_example_and_its_keys() -> None:
    plans, keys = str(EXAMPLES / "deals.toml"), str(EXAMPLES / "deals_keys.toml")
    proc = quota_cli("check", plans, "--keys", keys)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"ok: {plans} (2 plans, 11 limits; 4 per-model; 2 with a reserve;"
        " priorities: business 10; groups: org)",
        f"ok: {keys} (3 keys, 2 with overrides)",
        "  account 'acct_bo' on team: tpd 5,000,000/day, opus_tpm 400,000/min sliding for"
        " claude-opus-*",
        "  account 'acct_globex' on business: credits $250.00 grant",
    ]
    proc = quota_cli("plans", plans)
    assert proc.returncode == 0, proc.stderr
    assert "10,000,000/min sliding (global) for frontier, 7,500,000 open (25% kept" in proc.stdout
    assert "20,000,000/day per org" in proc.stdout and "business 10" in proc.stdout


def test_a_keys_file_with_a_bad_deal_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text('[keys.sk-x]\naccount = "a"\nplan = "team"\noverrides = { tpd = "lots" }\n')
    catalog = quota.Catalog.load(EXAMPLES / "deals.toml")
    with pytest.raises(quota.ConfigError, match="limit 'tpd', field 'rate': bad rate 'lots'"):
        load_keys(keys, catalog)
    proc = quota_cli("check", str(EXAMPLES / "deals.toml"), "--keys", str(keys))
    assert proc.returncode == 1 and "bad rate 'lots'" in proc.stderr
