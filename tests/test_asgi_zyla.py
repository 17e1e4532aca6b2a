"""The Zyla catalog over real HTTP: billing-cycle quotas, success-only counting, the three
Zyla headers and the trial, through uvicorn, httpx and the OpenAI SDK."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import openai
import pytest
from conftest import FakeClock, storage_url
from http_servers import BACKENDS, AppSlot, limiter_pair

import quota
from quota.cli.upstream import StandInUpstream

UTC = dt.timezone.utc
ANCHOR = dt.datetime(2026, 1, 31, 10, tzinfo=UTC)
NOW = dt.datetime(2026, 2, 10, tzinfo=UTC)
RENEWAL = dt.datetime(2026, 2, 28, 10, tzinfo=UTC)  # the 31st clamps to Feb 28
TRIAL_START = dt.datetime(2026, 2, 9, 8, tzinfo=UTC)
REMAINING = "x-zyla-api-calls-monthly-remaining"
LIMIT = "x-zyla-ratelimit-limit"
RESET = "x-zyla-ratelimit-reset"
BODY = {"model": "any", "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Zyla:
    limiter: quota.Limiter
    keys: dict[str, quota.Principal]
    middleware: quota.QuotaMiddleware
    http: httpx.Client
    url: str
    clock: FakeClock

    def call(self, key: str, path: str = "/v1/chat/completions", **headers: str) -> httpx.Response:
        return self.http.post(path, json=BODY, headers={"X-API-Key": key, **headers})

    def monthly(self, key: str) -> int:
        (state,) = self.limiter.peek(self.keys[key].model_copy(update={"key": key}))
        return state.remaining


@pytest.fixture(params=BACKENDS)
def zyla(
    request: pytest.FixtureRequest, server: tuple[AppSlot, str], clock: FakeClock
) -> Iterator[Zyla]:
    slot, url = server
    clock.set(NOW)
    alimiter, limiter = limiter_pair(
        quota.Catalog.load("zyla"), storage_url(request, request.param), clock
    )
    tag = uuid.uuid4().hex[:8]
    keys = {
        "sk-basic": quota.Principal(account=f"basic-{tag}", plan="basic", cycle_start=ANCHOR),
        "sk-trial": quota.Principal(account=f"trial-{tag}", plan="trial", cycle_start=TRIAL_START),
    }
    slot.app = mw = quota.QuotaMiddleware(StandInUpstream(), limiter=alimiter, resolve=keys.get)
    with httpx.Client(base_url=url, timeout=10) as http:
        yield Zyla(limiter, keys, mw, http, url, clock)
    limiter.close()


def test_the_three_zyla_headers_count_down(zyla: Zyla) -> None:
    to_renewal = int((RENEWAL - NOW).total_seconds())
    for i in range(3):
        r = zyla.call("sk-basic")
        assert r.status_code == 200
        assert r.headers[REMAINING] == str(999 - i)
        assert r.headers[LIMIT] == "1000"
        assert r.headers[RESET] == str(to_renewal)
        assert "ratelimit" not in r.headers and "x-ratelimit-remaining-requests" not in r.headers
    zyla.clock.advance(3600)
    assert zyla.call("sk-basic").headers[RESET] == str(to_renewal - 3600)


def test_a_failing_upstream_call_does_not_count(zyla: Zyla) -> None:
    assert zyla.call("sk-basic").headers[REMAINING] == "999"
    for status in ("500", "503", "429", "400"):
        r = zyla.call("sk-basic", **{"X-Upstream-Status": status})
        assert r.status_code == int(status)
        assert r.headers[REMAINING] == "998"  # shown at admission, then released
        assert zyla.monthly("sk-basic") == 999
    assert zyla.call("sk-basic", path="/v1/no-such-endpoint").status_code == 404
    assert zyla.monthly("sk-basic") == 999
    r = zyla.call("sk-basic")
    assert r.status_code == 200 and r.headers[REMAINING] == "998"


def test_a_failing_call_through_the_openai_sdk(zyla: Zyla) -> None:
    client = openai.OpenAI(base_url=f"{zyla.url}/v1", api_key="sk-basic", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="any", messages=BODY["messages"], extra_headers={"X-Upstream-Status": "502"}
        )
    stream = client.chat.completions.create(model="any", messages=BODY["messages"], stream=True)
    assert "stand-in" in "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert zyla.monthly("sk-basic") == 999


def test_the_monthly_quota_then_the_renewal(zyla: Zyla) -> None:
    who = zyla.keys["sk-basic"].model_copy(update={"key": "sk-basic"})
    assert zyla.limiter.acquire(who, {"requests": 999}).allowed
    r = zyla.call("sk-basic")
    assert r.status_code == 200 and r.headers[REMAINING] == "0"
    r = zyla.call("sk-basic")
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "monthly_quota_exceeded"
    assert r.headers["retry-after"] == str(int((RENEWAL - NOW).total_seconds()))
    assert r.headers[REMAINING] == "0"
    zyla.clock.set(RENEWAL)
    assert zyla.call("sk-basic").headers[REMAINING] == "999"


def test_the_trial_ends_after_50_calls_and_an_upgrade_starts_a_cycle(zyla: Zyla) -> None:
    client = openai.OpenAI(base_url=f"{zyla.url}/v1", api_key="sk-trial", max_retries=0)
    for i in range(50):
        raw = client.chat.completions.with_raw_response.create(
            model="any", messages=BODY["messages"]
        )
        assert raw.headers[REMAINING] == str(49 - i)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="any", messages=BODY["messages"])
    response = info.value.response
    assert response.json()["error"]["code"] == "trial_exhausted"
    assert "retry-after" not in response.headers  # it never comes back
    assert response.headers[LIMIT] == "50"

    # The account subscribes: its key now resolves to basic, with a cycle starting now.
    zyla.keys["sk-trial"] = quota.Principal(
        account=zyla.keys["sk-trial"].account, plan="basic", cycle_start=zyla.clock.now
    )
    zyla.middleware.keys.invalidate("sk-trial")
    raw = client.chat.completions.with_raw_response.create(model="any", messages=BODY["messages"])
    assert raw.headers[REMAINING] == "999"


def test_the_trial_ends_after_7_days(zyla: Zyla) -> None:
    assert zyla.call("sk-trial").headers[REMAINING] == "49"
    zyla.clock.set(TRIAL_START + dt.timedelta(days=7))
    r = zyla.call("sk-trial")
    assert r.status_code == 429 and r.json()["error"]["code"] == "trial_exhausted"
