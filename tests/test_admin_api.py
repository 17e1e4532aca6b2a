"""The admin API (``quota.admin``) over a real uvicorn on a free port: fuzzed by schemathesis
against its own OpenAPI document (no 5xx, every answer valid for the document), its bearer
token (401 and nothing changed), and the effect of every action on the limiter."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from conftest import FakeClock
from http_servers import uvicorn_server
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import quota
import quota.admin
from quota.admin.openapi import document

CATALOG = quota.Catalog.load("zylo")
TOKEN = "admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
GO = quota.Principal(account="acct_go", plan="go", key="sk-go-1")
BASIC = quota.Principal(account="acct_basic", plan="basic", key="sk-basic-1")
OTHER = quota.Principal(account="acct_other", plan="basic", key="sk-basic-2")
PRINCIPALS = {p.account: p for p in (GO, BASIC, OTHER)}


@dataclass
class Served:
    url: str
    limiter: quota.Limiter
    store: quota.admin.Overrides


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """The admin app on a sync limiter (memory://), its accounts from a mapping."""
    limiter = quota.Limiter(CATALOG, "memory://", clock=FakeClock())  # time stands still
    store = quota.admin.Overrides()
    app = quota.admin.app(limiter, token={"ops": TOKEN}, resolve=PRINCIPALS, overrides=store)
    with uvicorn_server(app) as url:
        yield Served(url, limiter, store)


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, headers=AUTH, timeout=10) as c:
        yield c


# -- fuzzing against the document ------------------------------------------------------------

SCHEMA = schemathesis.openapi.from_dict(document(CATALOG))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@SCHEMA.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_to_its_document(case: schemathesis.Case, served: Served) -> None:
    """No 5xx, and every status, content type, body and header as the document says."""
    case.call_and_validate(base_url=served.url, headers=AUTH, checks=CHECKS)


def test_every_route_is_in_the_document(served: Served, client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    assert doc == document(CATALOG)
    routes = {
        "/",
        "/accounts/{account}",
        "/openapi.json",
        "/api/accounts",
        "/api/accounts/{account}",
        "/api/accounts/{account}/usage",
        "/api/accounts/{account}/top-up",
        "/api/accounts/{account}/reset",
        "/api/accounts/{account}/overrides",
        "/api/accounts/{account}/overrides/{limit}",
    }
    assert set(doc["paths"]) == routes
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            assert "200" in op["responses"] and "401" in op["responses"], (path, method)


# -- auth ------------------------------------------------------------------------------------


def _balance(limiter: quota.Limiter, who: quota.Principal) -> int:
    return next(s.remaining for s in limiter.peek(who) if s.algorithm == "balance")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}],
    ids=["missing", "wrong", "not-bearer"],
)
def test_no_valid_token_is_401_and_changes_nothing(served: Served, headers: dict[str, str]) -> None:
    limiter = served.limiter
    limiter.acquire(GO, {"requests": 1})
    before = (limiter.peek(GO), _balance(limiter, GO), served.store.get(GO.account))
    base = "/api/accounts/acct_go"
    calls = [
        ("GET", base, None),
        ("GET", f"{base}/usage?format=csv", None),
        ("POST", f"{base}/top-up", {"meter": "credits", "amount": 5}),
        ("POST", f"{base}/reset", {"include_balance": True}),
        ("PUT", f"{base}/overrides/rpd", {"value": "99999/day"}),
        ("DELETE", f"{base}/overrides", None),
        ("GET", "/openapi.json", None),
        ("GET", "/api/accounts", None),
        ("GET", "/api/nothing-here", None),
    ]
    with httpx.Client(base_url=served.url, headers=headers) as c:
        for method, path, body in calls:
            r = c.request(method, path, json=body)
            assert r.status_code == 401, (method, path, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.json()["error"]["code"] == "invalid_admin_token"
    assert (limiter.peek(GO), _balance(limiter, GO), served.store.get(GO.account)) == before


def test_the_dashboard_cookie_reads_but_never_changes(served: Served) -> None:
    with httpx.Client(base_url=served.url) as c:
        login = c.get("/", params={"token": TOKEN})
        assert login.status_code == 303 and login.headers["location"] == "/"
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
        assert c.get("/api/accounts/acct_go").status_code == 200  # the cookie reads
        before = _balance(served.limiter, GO)
        r = c.post("/api/accounts/acct_go/top-up", json={"meter": "credits", "amount": 5})
        assert r.status_code == 401  # and never changes: a change needs the bearer header
        assert _balance(served.limiter, GO) == before
    with httpx.Client(base_url=served.url) as c:
        assert c.get("/", params={"token": "not-the-token-at-all"}).status_code == 401
        assert c.get("/api/accounts/acct_go").status_code == 401


def test_a_short_token_is_refused() -> None:
    with pytest.raises(quota.ConfigError, match="16 characters"):
        quota.admin.app(quota.Limiter(CATALOG), token="short")


# -- every action's effect on the limiter ----------------------------------------------------


def test_account_view_matches_peek(served: Served, client: httpx.Client) -> None:
    served.limiter.acquire(BASIC, {"requests": 3, "tokens": 700})
    body = client.get("/api/accounts/acct_basic").json()
    assert body["account"] == "acct_basic" and body["plan"]["name"] == "basic"
    states = {s.name: s for s in served.limiter.peek(BASIC)}
    for lim in body["limits"]:
        assert lim["remaining"] == states[lim["name"]].remaining
        assert lim["used"] == states[lim["name"]].limit - states[lim["name"]].remaining
    assert body["usage"]["daily"] == served.limiter.usage(BASIC, days=30)


def test_top_up_changes_the_balance(
    served: Served, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    before = _balance(served.limiter, GO)
    with caplog.at_level(logging.INFO, logger="quota.admin"):
        r = client.post("/api/accounts/acct_go/top-up", json={"meter": "credits", "amount": 2500})
    assert r.status_code == 200, r.text
    assert r.json()["balance"] == before + 2500 == _balance(served.limiter, GO)
    said = [rec.getMessage() for rec in caplog.records if rec.name == "quota.admin"]
    assert any("ops@127.0.0.1" in m and "top-up" in m and "amount=2500" in m for m in said)
    bad = client.post("/api/accounts/acct_basic/top-up", json={"meter": "credits", "amount": 1})
    assert bad.status_code == 422 and "no balance" in bad.json()["error"]["message"]


def test_reset_zeroes_usage(served: Served, client: httpx.Client) -> None:
    limiter = served.limiter
    limiter.acquire(OTHER, {"requests": 4, "tokens": 100})
    assert any(s.remaining < s.limit for s in limiter.peek(OTHER))
    r = client.post("/api/accounts/acct_other/reset", json={})
    assert r.status_code == 200 and r.json()["include_balance"] is False
    assert all(s.remaining == s.limit for s in limiter.peek(OTHER))
    client.post("/api/accounts/acct_go/top-up", json={"meter": "credits", "amount": 10})
    kept = _balance(limiter, GO)
    client.post("/api/accounts/acct_go/reset", json={})
    assert _balance(limiter, GO) == kept  # balances are kept unless asked
    client.post("/api/accounts/acct_go/reset", json={"include_balance": True})
    assert _balance(limiter, GO) != kept


def test_override_raises_a_cap_for_that_account_only(served: Served, client: httpx.Client) -> None:
    r = client.put("/api/accounts/acct_basic/overrides/rpm", json={"value": "500/minute"})
    assert r.status_code == 200, r.text
    assert r.json()["overrides"] == {"rpm": "500/minute"}
    assert served.store.get("acct_basic") == {"rpm": "500/minute"}
    # The gateway resolves through the store: that account gets the deal, no other does.
    resolve = served.store.resolver(lambda key: {"k1": BASIC, "k2": OTHER}.get(key))
    basic, other = asyncio.run(resolve("k1")), asyncio.run(resolve("k2"))  # type: ignore[arg-type]
    assert basic is not None and other is not None
    rpm = {
        who.account: next(s.limit for s in served.limiter.peek(who) if s.name == "rpm")
        for who in (basic, other)
    }
    assert rpm == {"acct_basic": 500, "acct_other": 10}
    view = client.get("/api/accounts/acct_basic").json()
    assert next(x for x in view["limits"] if x["name"] == "rpm")["limit"] == 500
    cleared = client.delete("/api/accounts/acct_basic/overrides/rpm")
    assert cleared.json()["overrides"] == {} and served.store.get("acct_basic") == {}


def test_a_bad_override_is_422_in_the_plan_file_wording(
    served: Served, client: httpx.Client
) -> None:
    r = client.put("/api/accounts/acct_basic/overrides/rpm", json={"value": "10/fortnight"})
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert "plan 'basic', limit 'rpm', field 'rate'" in message and "fortnight" in message
    r = client.put("/api/accounts/acct_basic/overrides/rpm", json={"value": {"meter": "tokens"}})
    assert r.status_code == 422 and "cannot change a limit's meter" in r.json()["error"]["message"]
    r = client.put("/api/accounts/acct_basic/overrides/nope", json={"value": "1/day"})
    assert r.status_code == 422 and "has no limit 'nope'" in r.json()["error"]["message"]
    assert served.store.get("acct_basic") == {}


def test_history_json_and_csv_match_usage(served: Served, client: httpx.Client) -> None:
    served.limiter.acquire(GO, {"requests": 2, "tokens": 321})
    expected = served.limiter.usage(GO, days=7)
    assert client.get("/api/accounts/acct_go/usage", params={"days": 7}).json() == expected
    r = client.get("/api/accounts/acct_go/usage", params={"days": 7, "format": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    meters = rows[0][1:]
    assert rows[0][0] == "day" and meters == list(next(iter(expected.values())))
    got = {row[0]: dict(zip(meters, map(int, row[1:]), strict=True)) for row in rows[1:]}
    assert got == expected


def test_an_unknown_account_needs_its_plan_in_the_query(client: httpx.Client) -> None:
    assert client.get("/api/accounts/acct_new").status_code == 404
    r = client.get("/api/accounts/acct_new", params={"plan": "pro", "key": "sk-new"})
    assert r.status_code == 200 and r.json()["plan"]["name"] == "pro"
    assert client.get("/api/accounts/acct_new", params={"plan": "gold"}).status_code == 422


def test_nearest_caps_lists_the_fullest_first(served: Served, client: httpx.Client) -> None:
    served.limiter.reset(OTHER)
    served.limiter.reset(BASIC)
    for _ in range(9):
        served.limiter.acquire(OTHER, {"requests": 1})
    rows = client.get("/api/accounts").json()["accounts"]
    assert rows[0]["account"] == "acct_other"
    assert rows[0]["limit"] == "rpm" and rows[0]["fraction_used"] == 0.9
    assert {r["account"] for r in rows} == set(PRINCIPALS)


def test_an_async_limiter_on_redis(redis_port: int) -> None:
    """The same app over an AsyncLimiter on a real Redis."""
    url = f"redis://127.0.0.1:{redis_port}/0"
    limiter = quota.AsyncLimiter(CATALOG, url, secret=b"admin-test-secret-0123")
    app = quota.admin.app(limiter, token=TOKEN, resolve=lambda a: PRINCIPALS.get(a))
    with uvicorn_server(app) as base, httpx.Client(base_url=base, headers=AUTH) as c:
        assert c.post("/api/accounts/acct_go/reset", json={"include_balance": True}).is_success
        r = c.post("/api/accounts/acct_go/top-up", json={"meter": "credits", "amount": 7})
        assert r.status_code == 200
        view = c.get("/api/accounts/acct_go").json()
        assert view["balances"]["credits"] == r.json()["balance"]
        assert c.get("/api/accounts").json()["accounts"] == []  # a function lists nothing


# -- quota serve and the example -------------------------------------------------------------


def test_serve_refuses_a_short_admin_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from quota.cli import main

    assert main(["serve", "--admin-token", "short"]) == 2
    assert "at least 16 characters" in capsys.readouterr().err
    monkeypatch.setenv("QUOTA_ADMIN_TOKEN", "tiny")  # the variable is read when no option is
    assert main(["serve"]) == 2
    assert "at least 16 characters" in capsys.readouterr().err


def test_the_example_mounts_the_admin_app_beside_a_gateway() -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "admin_app.py"
    proc = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "rpd: 3 used, 28,797 left"
    assert out[1] == "credits after a $5 top-up: 15,000,000"
    assert out[2].startswith("a bad deal: 422") and "plan 'go', limit 'rpd', field 'rate'" in out[2]
    assert out[3] == "deal: {'rpd': '4/day'}"
    assert out[4] == "with rpd 4/day, two more calls: [200, 429]"
    assert out[5].endswith(",4,60,0,0,0,0") and out[6] == "without the token: 401"


def test_redis_overrides_are_shared_by_a_fleet(redis_port: int) -> None:
    """Two processes' stores on one Redis: what the admin app sets, a gateway's resolver
    applies; clearing it there clears it everywhere."""
    url = f"redis://127.0.0.1:{redis_port}/0?prefix=admintest"
    admin_side, gateway_side = (quota.admin.RedisOverrides.from_url(url) for _ in range(2))
    limiter = quota.Limiter(CATALOG, "memory://", clock=FakeClock())
    app = quota.admin.app(limiter, token=TOKEN, resolve=PRINCIPALS, overrides=admin_side)
    resolve = gateway_side.resolver({"sk-basic-1": BASIC}.get)
    try:
        with uvicorn_server(app) as base, httpx.Client(base_url=base, headers=AUTH) as c:
            c.delete("/api/accounts/acct_basic/overrides")
            r = c.put("/api/accounts/acct_basic/overrides/rpd", json={"value": {"limit": 9000}})
            assert r.status_code == 200, r.text
            who = asyncio.run(resolve("sk-basic-1"))  # type: ignore[arg-type]
            assert who is not None and dict(who.overrides) == {"rpd": {"limit": 9000}}
            rpd = next(s for s in limiter.peek(who) if s.name == "rpd")
            assert rpd.limit == 9000
            assert not admin_side.client.keys("*acct_basic*")  # no raw account in key names
            assert c.delete("/api/accounts/acct_basic/overrides/rpd").json()["overrides"] == {}
            assert gateway_side.get("acct_basic") == {}
    finally:
        admin_side.close()
        gateway_side.close()
