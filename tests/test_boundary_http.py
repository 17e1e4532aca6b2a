"""The boundary over real HTTP: uvicorn on a free port, QuotaMiddleware around the recording
app of ``liberal.py``, a counting wrapper outside the middleware. Raw sockets send the paths
and methods as written (httpx removes a literal '..' itself, even from ``raw_path``; it keeps
``%2e%2e``); httpx and the official OpenAI SDK (default retries) for the rest."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from conftest import FakeClock
from http_servers import AppSlot, RawResponse, limiter_pair, raw_request
from liberal import Recorder, Reply

import quota
from quota.asgi.types import ASGIApp, Receive, Scope, Send

HI: list[Any] = [{"role": "user", "content": "hi"}]
PREMIUM_CHAT = json.dumps({"model": "gpt-5.5", "messages": HI}).encode()
BASIC_CHAT = json.dumps({"model": "llama-3.1-8b", "messages": HI, "max_tokens": 10}).encode()
CORS = (b"Origin: https://app.example", b"Access-Control-Request-Method: POST")


class Counting:
    """Outside the middleware: every HTTP request the server received, (method, path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[tuple[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)


@dataclass
class Gateway:
    url: str
    app: Recorder
    counter: Counting
    limiter: quota.Limiter
    who: quota.Principal

    def left(self) -> dict[str, int]:
        return {s.name: s.remaining for s in self.limiter.peek(self.who)}

    def send(self, method: bytes, path: str, body: bytes = b"", *extra: bytes) -> RawResponse:
        """A request sent byte for byte: the path and the method exactly as given."""
        self.app.raw = path
        lines = [method + b" " + path.encode() + b" HTTP/1.1", b"Host: test"]
        lines += [b"Connection: close", *extra]
        if body:
            lines += [b"Content-Type: application/json", b"Content-Length: %d" % len(body)]
        return raw_request(self.url, b"\r\n".join(lines) + b"\r\n\r\n" + body)


KEY = b"Authorization: Bearer sk-basic"


@pytest.fixture
def gw(server: tuple[AppSlot, str], clock: FakeClock) -> Iterator[Gateway]:
    slot, url = server
    alimiter, limiter = limiter_pair(quota.Catalog.load("zylo"), "memory://", clock)
    who = quota.Principal(account=f"basic-{uuid.uuid4().hex[:8]}", plan="basic", key="sk-basic")
    app = Recorder("basic", None, True, Reply("json", 5, 5))
    mw = quota.QuotaMiddleware(app, limiter=alimiter, resolve={"sk-basic": who}.get)
    counter = Counting(mw)
    slot.app = counter
    yield Gateway(url, app, counter, limiter, who)
    limiter.close()


def refused(gw: Gateway, response: RawResponse, before: dict[str, int]) -> dict[str, str]:
    """A refusal of the middleware: OpenAI-shaped, the app never ran, nothing charged."""
    error: dict[str, str] = json.loads(response.body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert not gw.app.reached and not gw.app.violations
    assert gw.left() == before
    return error


# -- (a) paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/../chat/completions",
        "/v1/models/%2e%2e/chat/completions",
        "/v1/models/.%2E/chat/completions",
        "/v1/x/../../v1/chat/completions",
        "/v1/models/gpt-5.5/%2E%2E/%2e%2e/chat/completions/",
    ],
)
def test_dot_segments_do_not_smuggle_a_premium_model(gw: Gateway, path: str) -> None:
    before = gw.left()
    response = gw.send(b"POST", path, PREMIUM_CHAT, KEY)
    assert response.status in (400, 403), response.body
    error = refused(gw, response, before)
    if response.status == 400:
        assert error["code"] == "invalid_path"
    else:
        assert response.headers["x-should-retry"] == "false"


def test_a_stock_client_can_send_encoded_dots_and_gets_a_403(gw: Gateway) -> None:
    before = gw.left()
    path = "/v1/models/%2e%2e/chat/completions"
    response = httpx.post(gw.url + path, content=PREMIUM_CHAT, headers={"x-api-key": "sk-basic"})
    assert response.status_code == 403 and response.headers["x-should-retry"] == "false"
    assert gw.counter.requests == [("POST", "/v1/models/../chat/completions")]  # uvicorn's
    refused(gw, RawResponse(403, {}, response.content), before)


@pytest.mark.parametrize(
    ("path", "seen"),
    [
        ("/v1/models/../chat/completions", "/v1/chat/completions"),
        ("/v1/models/%2e%2e/chat/completions/", "/v1/chat/completions/"),
        ("//v1/./%63hat//completions", "/v1/chat/completions"),
        ("/v1/%43hat/completions", "/v1/Chat/completions"),  # not the chat route: unknown
        ("/v1/x/%c3%a9/..%2f..", None),  # an encoded slash: refused
    ],
)
def test_the_app_sees_the_normalised_path(gw: Gateway, path: str, seen: str | None) -> None:
    before = gw.left()
    response = gw.send(b"POST", path, BASIC_CHAT, KEY)
    if seen is None:
        assert response.status == 400
        assert refused(gw, response, before)["code"] == "invalid_path"
        return
    assert response.status == 200, response.body
    assert gw.app.calls == [("POST", seen, seen.encode())]
    assert not gw.app.violations
    assert gw.left()["tpd"] == before["tpd"] - 10  # the usage the app reported


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat%2Fcompletions",
        "/v1/chat%2fcompletions",
        "/v1/models/..%2F..%2Fchat/completions",
        "/v1/chat\\completions",
        "/v1/chat%5Ccompletions",
        "/v1/chat/completions%00",
        "/../v1/chat/completions",
        "/v1/%ff/chat/completions",
    ],
)
def test_an_encoded_slash_and_the_like_are_invalid_paths(gw: Gateway, path: str) -> None:
    before = gw.left()
    response = gw.send(b"POST", path, PREMIUM_CHAT, KEY)
    assert response.status == 400, response.body
    assert refused(gw, response, before)["code"] == "invalid_path"


# -- (b) methods ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", [b"PUT", b"PATCH", b"DELETE", b"post", b"Post", b"GET"])
def test_another_method_on_a_post_route_is_405(gw: Gateway, method: bytes) -> None:
    before = gw.left()
    response = gw.send(method, "/v1/chat/completions", PREMIUM_CHAT, KEY)
    assert response.status == 405, response.body
    refused(gw, response, before)
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"POST"}
    assert gw.counter.requests == [(method.decode(), "/v1/chat/completions")]


@pytest.mark.parametrize("extra", [(), CORS, (KEY,), (KEY, *CORS)])
def test_an_options_request_with_a_body_is_not_forwarded(
    gw: Gateway, extra: tuple[bytes, ...]
) -> None:
    before = gw.left()
    response = gw.send(b"OPTIONS", "/v1/chat/completions", PREMIUM_CHAT, *extra)
    assert response.status in (401, 405), response.body
    refused(gw, response, before)


def test_a_real_cors_preflight_passes_without_a_key(gw: Gateway) -> None:
    gw.app.keyed = False
    before = gw.left()
    response = gw.send(b"OPTIONS", "/v1/chat/completions", b"", *CORS)
    assert response.status == 200, response.body
    assert gw.app.calls == [("OPTIONS", "/v1/chat/completions", b"/v1/chat/completions")]
    assert not gw.app.violations and gw.left() == before
    gw.app.reached = False
    response = gw.send(b"OPTIONS", "/v1/models/%2e%2e/%2e%2e/../x", b"", *CORS)
    assert response.status == 400  # even a preflight needs a valid path
    refused(gw, response, before)


# -- (c) retries ----------------------------------------------------------------------------


def sdk(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key="sk-basic", timeout=10)  # 2 retries


def test_a_premium_model_on_basic_is_final_for_the_sdk(gw: Gateway) -> None:
    with pytest.raises(openai.PermissionDeniedError) as info:
        sdk(gw).chat.completions.create(model="gpt-5.5", messages=HI)
    assert info.value.response.headers["x-should-retry"] == "false"
    assert gw.counter.requests == [("POST", "/v1/chat/completions")]
    assert not gw.app.reached


def test_a_429_above_the_capacity_is_final_for_the_sdk(gw: Gateway) -> None:
    before = gw.left()
    with pytest.raises(openai.RateLimitError) as info:
        sdk(gw).chat.completions.create(
            model="llama-3.1-8b",
            messages=HI,
            max_tokens=250_000,  # basic's tpd is 200_000 a day: never
        )
    assert info.value.response.headers["x-should-retry"] == "false"
    assert gw.counter.requests == [("POST", "/v1/chat/completions")]
    assert not gw.app.reached and gw.left() == before


def test_a_429_that_can_succeed_carries_retry_after(gw: Gateway) -> None:
    with httpx.Client(base_url=gw.url, headers={"Authorization": "Bearer sk-basic"}) as http:
        for _ in range(10):  # basic: 10 requests a minute
            assert http.post("/v1/chat/completions", content=BASIC_CHAT).status_code == 200
        response = http.post("/v1/chat/completions", content=BASIC_CHAT)
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers.get("x-should-retry") != "false"
    assert len(gw.counter.requests) == 11 and len(gw.app.calls) == 10
