"""The Zylo table played over real HTTP: uvicorn on a free port, QuotaMiddleware around the
stand-in upstream, httpx and the official OpenAI SDK as clients, a FakeClock for time."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest
from conftest import FakeClock, storage_url
from http_servers import BACKENDS, AppSlot, limiter_pair, uvicorn_server

import quota
from quota.asgi import estimate_prompt_tokens
from quota.asgi.types import Receive, Scope, Send
from quota.backends.memory import MemoryBackend
from quota.cli.upstream import StandInUpstream

HI = [{"role": "user", "content": "hi"}]


@dataclass
class Gateway:
    url: str
    limiter: quota.Limiter
    keys: dict[str, quota.Principal]
    clock: FakeClock
    middleware: quota.QuotaMiddleware
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def who(self, key: str) -> quota.Principal:
        return self.keys[key].model_copy(update={"key": key})

    def remaining(self, key: str) -> dict[str, int]:
        return {s.name: s.remaining for s in self.limiter.peek(self.who(key))}

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=10)

    def post(self, path: str, key: str, body: dict[str, Any], **headers: str) -> httpx.Response:
        return self.http.post(
            path, json=body, headers={"Authorization": f"Bearer {key}", **headers}
        )


@pytest.fixture(params=BACKENDS)
def gw(
    request: pytest.FixtureRequest, server: tuple[AppSlot, str], clock: FakeClock
) -> Iterator[Gateway]:
    slot, url = server
    catalog = quota.Catalog.load("zylo")
    alimiter, limiter = limiter_pair(catalog, storage_url(request, request.param), clock)
    tag = uuid.uuid4().hex[:8]
    keys = {f"sk-{p}": quota.Principal(account=f"acct-{p}-{tag}", plan=p) for p in catalog.plans}
    keys["sk-go-2"] = keys["sk-go"]  # a second key of the same account
    mw = quota.QuotaMiddleware(StandInUpstream(), limiter=alimiter, resolve=keys.get)
    slot.app = mw
    gateway = Gateway(url, limiter, keys, clock, mw)
    yield gateway
    gateway.http.close()
    limiter.close()


def chat(client: openai.OpenAI, **kwargs: Any) -> Any:
    kwargs.setdefault("model", "llama-3.1-8b")
    kwargs.setdefault("messages", HI)
    return client.chat.completions.with_raw_response.create(**kwargs)


# -- basic: 10 requests a minute ------------------------------------------------------------


def test_basic_11th_request_in_a_minute_is_a_rate_limit_error(gw: Gateway) -> None:
    client = gw.client("sk-basic")
    t0 = gw.clock.ms
    for i in range(10):
        gw.clock.ms = t0 + i * 1000
        raw = chat(client, max_tokens=10)
        assert raw.headers["x-ratelimit-remaining-requests"] == str(9 - i)
        assert raw.headers["x-ratelimit-limit-requests"] == "10"
        assert raw.parse().choices[0].message.content.startswith("This is the stand-in")
    gw.clock.ms = t0 + 9500
    with pytest.raises(openai.RateLimitError) as info:
        chat(client, max_tokens=10)
    response = info.value.response
    assert response.status_code == 429
    assert response.headers["retry-after"] == "51"  # the t=0 request leaves at t=60 s
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert '"rpm";r=0' in response.headers["ratelimit"]
    error = response.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert "rpm" in error["message"]
    assert gw.remaining("sk-basic")["rpd"] == 7190  # the denial charged nothing

    gw.clock.advance(int(response.headers["retry-after"]))  # the retry-after is usable
    raw = chat(client, max_tokens=10)
    assert raw.http_response.status_code == 200
    assert raw.headers["x-ratelimit-remaining-requests"] == "0"


def test_tools_images_and_premium_models_on_basic_are_permission_errors(gw: Gateway) -> None:
    client = gw.client("sk-basic")
    before = gw.remaining("sk-basic")
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    image = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ]
    cases = [
        ({"tools": [tool]}, "feature_not_allowed", "'tools'"),
        ({"tools": [{"type": "google_search"}]}, "feature_not_allowed", "'google_search'"),
        ({"messages": image}, "feature_not_allowed", "'images'"),
        ({"model": "gpt-5.5"}, "model_not_allowed", "premium tier"),
    ]
    for kwargs, code, words in cases:
        with pytest.raises(openai.PermissionDeniedError) as info:
            chat(client, **kwargs)
        error = info.value.response.json()["error"]
        assert error["code"] == code and error["type"] == "permission_error"
        assert words in error["message"]
        assert "retry-after" not in info.value.response.headers
        assert info.value.response.headers["x-ratelimit-remaining-requests"] == "10"
    assert gw.remaining("sk-basic") == before


def test_go_has_tools_premium_models_and_credits(gw: Gateway, zylo_price: Any) -> None:
    client = gw.client("sk-go")
    messages = [{"role": "user", "content": "price me"}]
    raw = chat(client, model="gpt-5.5", messages=messages, max_tokens=100)
    usage = raw.parse().usage
    prompt = estimate_prompt_tokens({"model": "gpt-5.5", "messages": messages, "max_tokens": 100})
    assert usage.prompt_tokens == prompt
    state = gw.remaining("sk-go")
    assert state["credits"] == 10_000_000 - zylo_price("gpt-5.5", prompt, usage.completion_tokens)
    assert state["tpd"] == 512_000 - usage.total_tokens


def test_out_of_credits_is_402_then_a_top_up_helps(gw: Gateway) -> None:
    who = gw.who("sk-go")
    assert gw.limiter.acquire(who, {"credits": 9_999_990}).allowed  # spend all but 10
    client = gw.client("sk-go")
    with pytest.raises(openai.APIStatusError) as info:
        chat(client, model="claude-opus-4.8", max_tokens=100)
    assert info.value.status_code == 402
    error = info.value.response.json()["error"]
    assert error["type"] == "insufficient_quota" and error["code"] == "insufficient_quota"
    assert "retry-after" not in info.value.response.headers
    assert chat(client, max_tokens=100).http_response.status_code == 200  # basic tier: no credits
    gw.limiter.top_up(who, "credits", 1_000_000)
    assert chat(client, model="claude-opus-4.8", max_tokens=100).http_response.status_code == 200


# -- per-key budgets ------------------------------------------------------------------------


def test_web_extract_is_10_per_minute_per_key(gw: Gateway) -> None:
    t0 = gw.clock.ms
    for i in range(10):
        gw.clock.ms = t0 + i * 2000
        r = gw.post("/v1/web-extract", "sk-go", {"url": f"https://example.com/{i}"})
        assert r.status_code == 200, r.text
        assert r.json()["content"] == f"Stand-in content of https://example.com/{i}."
        assert f'"web_extract";r={9 - i}' in r.headers["ratelimit"]
    r = gw.post("/v1/web-extract", "sk-go", {"url": "https://example.com/x"})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "42"
    assert r.json()["error"]["message"].startswith("limit 'web_extract' reached")
    # Per key: the account's other key has its own budget; the daily cap is the account's.
    r = gw.post("/v1/web-extract", "sk-go-2", {"url": "https://example.com/y"})
    assert r.status_code == 200 and '"web_extract";r=9' in r.headers["ratelimit"]
    assert gw.remaining("sk-go-2")["rpd"] == 28_800 - 11


def test_google_search_and_url_context_share_one_budget(gw: Gateway) -> None:
    client = gw.client("sk-go")
    search = [{"type": "google_search"}]
    url_context = [{"url_context": {}}]  # the Gemini-style spelling
    for i in range(4):
        raw = chat(client, tools=search)
        assert f'"search";r={9 - i}' in raw.headers["ratelimit"]
    raw = chat(client, tools=[{"type": "google_search"}, {"type": "url_context"}])  # counts 2
    assert '"search";r=4' in raw.headers["ratelimit"]
    for i in range(4):
        raw = chat(client, tools=url_context)
        assert f'"search";r={3 - i}' in raw.headers["ratelimit"]
    with pytest.raises(openai.RateLimitError) as info:
        chat(client, tools=search)
    assert info.value.response.headers["retry-after"] == "60"
    assert "'search'" in info.value.response.json()["error"]["message"]
    # Function tools and plain chat do not spend the search budget.
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    assert chat(client, tools=[tool]).http_response.status_code == 200
    assert gw.remaining("sk-go")["search"] == 0


def test_code_execution_needs_pro(gw: Gateway) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        chat(gw.client("sk-go"), tools=[{"type": "code_execution"}])
    raw = chat(gw.client("sk-pro"), tools=[{"code_execution": {}}])
    assert '"code_execution";r=19' in raw.headers["ratelimit"]


# -- settlement -----------------------------------------------------------------------------


def test_streamed_usage_settles_tokens_seen_by_the_next_response(gw: Gateway) -> None:
    client = gw.client("sk-basic")
    messages = [{"role": "user", "content": "stream me a short answer please"}]
    with client.chat.completions.with_streaming_response.create(
        model="llama-3.1-8b",
        messages=messages,
        max_tokens=500,
        stream=True,
        stream_options={"include_usage": True},
    ) as raw:
        sent = {
            "model": "llama-3.1-8b",
            "messages": messages,
            "max_tokens": 500,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        prompt = estimate_prompt_tokens(sent)  # every string of the body the SDK sent
        # Headers arrive before the first byte, with the estimate charged.
        assert raw.headers["x-ratelimit-remaining-tokens"] == str(200_000 - prompt - 500)
        chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == len(text.split())
    assert gw.remaining("sk-basic")["tpd"] == 200_000 - usage.total_tokens

    raw2 = chat(client, max_tokens=20)
    estimate2 = estimate_prompt_tokens({"model": "llama-3.1-8b", "messages": HI, "max_tokens": 20})
    estimate2 += 20
    expected = 200_000 - usage.total_tokens - estimate2
    assert raw2.headers["x-ratelimit-remaining-tokens"] == str(expected)


def test_stream_without_usage_settles_the_text_seen(gw: Gateway) -> None:
    client = gw.client("sk-basic")
    stream = client.chat.completions.create(
        model="llama-3.1-8b", messages=HI, max_tokens=1000, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    sent = {"model": "llama-3.1-8b", "messages": HI, "max_tokens": 1000, "stream": True}
    prompt = estimate_prompt_tokens(sent)
    assert gw.remaining("sk-basic")["tpd"] == 200_000 - prompt - math.ceil(len(text) / 4)


def test_default_output_reserve_and_n(gw: Gateway) -> None:
    body = {"model": "m", "messages": HI, "n": 2}
    r = gw.post("/v1/chat/completions", "sk-basic", body)
    prompt = estimate_prompt_tokens(body)
    assert r.headers["x-ratelimit-remaining-tokens"] == str(200_000 - prompt - 2 * 4096)


def test_failed_upstream_call_counts_the_request_but_no_tokens_on_zylo(gw: Gateway) -> None:
    with pytest.raises(openai.InternalServerError):
        chat(gw.client("sk-basic"), extra_headers={"X-Upstream-Status": "500"})
    state = gw.remaining("sk-basic")
    assert state["rpm"] == 9 and state["tpd"] == 200_000  # Zylo is not success-only


def test_client_disconnect_mid_stream_settles_what_was_seen(gw: Gateway) -> None:
    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # the request body
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        chunk = {"choices": [{"index": 0, "delta": {"content": "Hello there"}}]}
        body = b"data: " + json.dumps(chunk).encode() + b"\n\n"
        await send({"type": "http.response.body", "body": body, "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass

    limiter = gw.middleware.limiter
    assert isinstance(limiter, quota.AsyncLimiter)
    slot = AppSlot()
    slot.app = quota.QuotaMiddleware(slow, limiter=limiter, resolve=gw.keys.get)
    with uvicorn_server(slot) as url, httpx.Client(base_url=url) as client:
        body = {"model": "m", "messages": HI, "stream": True, "max_tokens": 300}
        headers = {"Authorization": "Bearer sk-basic"}
        with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
            first = next(r.iter_raw())
            assert b"Hello there" in first
        prompt = estimate_prompt_tokens(body)
        expected = 200_000 - prompt - math.ceil(len("Hello there") / 4)
        deadline = time.monotonic() + 5
        while gw.remaining("sk-basic")["tpd"] != expected and time.monotonic() < deadline:
            time.sleep(0.01)  # waiting for the server thread to notice, not moving test time
        assert gw.remaining("sk-basic")["tpd"] == expected


# -- free endpoints and keys ----------------------------------------------------------------


def test_models_stats_validate_are_free_but_need_a_key(gw: Gateway) -> None:
    client = gw.client("sk-basic")
    models = client.models.list()
    assert "gpt-5.5" in [m.id for m in models.data]
    for path in ("/stats", "/validate", "/v1/models/gpt-5.5"):
        r = gw.http.get(path, headers={"X-API-Key": "sk-basic"})
        assert r.headers["x-ratelimit-remaining-requests"] == "10", path
    assert gw.http.get("/validate", headers={"X-API-Key": "sk-basic"}).json()["plan"] == "basic"
    assert gw.remaining("sk-basic") == {"rpm": 10, "rpd": 7200, "tpd": 200_000, "web_extract": 10}
    with pytest.raises(openai.AuthenticationError) as info:
        gw.client("sk-nope").models.list()
    assert info.value.response.json()["error"]["code"] == "invalid_api_key"
    assert gw.http.get("/v1/models").status_code == 401


def test_budgets_belong_to_the_account_not_the_key(gw: Gateway) -> None:
    for key in ("sk-go", "sk-go-2", "sk-go"):
        assert chat(gw.client(key), max_tokens=10).http_response.status_code == 200
    assert gw.remaining("sk-go")["rpd"] == gw.remaining("sk-go-2")["rpd"] == 28_797


def test_enterprise_has_no_request_limits(gw: Gateway) -> None:
    client = gw.client("sk-enterprise")
    for _ in range(15):
        raw = chat(client, model="claude-opus-4.8", max_tokens=10)
        assert "x-ratelimit-remaining-requests" not in raw.headers
    assert '"credits";r=' in raw.headers["ratelimit"]


def test_a_sync_limiter_works_too(gw: Gateway) -> None:
    gw_sync = quota.QuotaMiddleware(StandInUpstream(), limiter=gw.limiter, resolve=gw.keys.get)
    # Inline on the memory engine, in a worker thread on a networked one.
    assert gw_sync.offload is not isinstance(gw.limiter.backend, MemoryBackend)
    slot = AppSlot()
    slot.app = gw_sync
    with uvicorn_server(slot) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-basic", max_retries=0)
        for _ in range(10):
            chat(client, max_tokens=10)
        with pytest.raises(openai.RateLimitError):
            chat(client, max_tokens=10)
    assert gw.remaining("sk-basic")["rpm"] == 0


@pytest.fixture(scope="module")
def zylo_price() -> Any:
    return quota.Catalog.load("zylo").price
