"""The middleware's parts in-process: usage parsing, key extraction, the resolver cache, the
profile's costs, and the ASGI edge cases (lifespan, OPTIONS, app errors, disconnects)."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Callable
from typing import Any

import pytest
from conftest import FakeClock
from http_servers import limiter_pair

import quota
from quota.asgi import KeyCache, OpenAIProfile, UsageReader, estimate_prompt_tokens, extract_key
from quota.asgi.responses import ApiError, send_json
from quota.asgi.types import Message, Receive, Scope, Send

ZYLO = quota.Catalog.load("zylo")
ZYLA = quota.Catalog.load("zyla")


# -- usage ----------------------------------------------------------------------------------


def sse(*events: dict[str, Any], crlf: bool = False) -> bytes:
    end = b"\r\n\r\n" if crlf else b"\n\n"
    out = b"".join(b"data: " + json.dumps(e).encode() + end for e in events)
    return out + b"data: [DONE]" + end


STREAM = sse(
    {"choices": [{"delta": {"content": "Hello "}}]},
    {"choices": [{"delta": {"content": "world"}}], "usage": None},
    {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}},
)


@pytest.mark.parametrize("crlf", [False, True])
def test_sse_usage_whatever_the_chunking(crlf: bool) -> None:
    data = (
        STREAM
        if not crlf
        else sse(
            {"choices": [{"delta": {"content": "Hello "}}]},
            {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
            crlf=True,
        )
    )
    for size in (1, 2, 7, 64, len(data)):
        reader = UsageReader(b"text/event-stream; charset=utf-8")
        for i in range(0, len(data), size):
            reader.feed(data[i : i + size])
        reader.finish()
        assert reader.tokens(99) == (5, 2), size


def test_sse_without_usage_counts_the_text() -> None:
    reader = UsageReader(b"text/event-stream")
    reader.feed(sse({"choices": [{"delta": {"content": "x" * 9}}]}))
    assert reader.tokens(40) == (40, 3)


def test_sse_skips_an_overlong_line_and_reads_on() -> None:
    reader = UsageReader(b"text/event-stream", max_line=100)
    reader.feed(b"data: " + b"y" * 500)
    reader.feed(b"z" * 500 + b"\n\n")
    reader.feed(sse({"usage": {"prompt_tokens": 1, "completion_tokens": 1}}))
    assert reader.tokens(0) == (1, 1)


def test_responses_api_usage_and_deltas() -> None:
    reader = UsageReader(b"text/event-stream")
    reader.feed(sse({"type": "response.output_text.delta", "delta": "abcd" * 3}))
    assert reader.tokens(1) == (1, 3)
    reader.feed(
        sse(
            {
                "type": "response.completed",
                "response": {"usage": {"input_tokens": 8, "output_tokens": 4}},
            }
        )
    )
    assert reader.tokens(1) == (8, 4)


def test_json_usage_plain_gzip_and_beyond_the_cap() -> None:
    doc = {
        "choices": [{"message": {"content": "hi there"}}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }
    raw = json.dumps(doc).encode()
    for encoding, data in ((b"", raw), (b"gzip", gzip.compress(raw))):
        reader = UsageReader(b"application/json", encoding)
        for i in range(0, len(data), 5):
            reader.feed(data[i : i + 5])
        reader.finish()
        assert reader.tokens(0) == (11, 3)
    big = json.dumps({"data": "x" * 5000, **doc}).encode()
    reader = UsageReader(b"application/json", max_json=1000)
    for i in range(0, len(big), 300):
        reader.feed(big[i : i + 300])
    reader.finish()
    assert reader.tokens(0) == (11, 3)


def test_usage_total_only_and_junk() -> None:
    reader = UsageReader(b"application/json")
    reader.feed(b'{"usage": {"total_tokens": 30}}')
    reader.finish()
    assert reader.tokens(12) == (12, 18)
    for junk in (b'{"usage": {"prompt_tokens": -1, "completion_tokens": true}}', b"not json"):
        reader = UsageReader(b"application/json")
        reader.feed(junk)
        reader.finish()
        assert not reader.has_usage
    assert UsageReader(b"text/html").tokens(5) is None  # unreadable: keep the estimate
    assert UsageReader(b"application/json", b"br").tokens(5) is None
    broken = UsageReader(b"application/json", b"gzip")
    broken.feed(b"not gzip at all")
    assert broken.tokens(5) is None


def test_a_non_stream_reply_without_usage_counts_its_text() -> None:
    reader = UsageReader(b"application/json")
    reader.feed(json.dumps({"choices": [{"message": {"content": "abcdefgh"}}]}).encode())
    reader.finish()
    assert reader.tokens(10) == (10, 2)


# -- keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ([(b"authorization", b"Bearer sk-1")], "sk-1"),
        ([(b"authorization", b"bearer  sk-1 ")], "sk-1"),
        ([(b"x-api-key", b"sk-2")], "sk-2"),
        ([(b"authorization", b"Bearer sk-1"), (b"x-api-key", b"sk-2")], "sk-1"),
    ],
)
def test_extract_key(headers: list[tuple[bytes, bytes]], key: str) -> None:
    assert extract_key(headers) == key


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"authorization", b"Token sk-1")],
        [(b"authorization", b"Bearer")],
        [(b"authorization", b"Bearer a b")],
        [(b"authorization", b"Bearer \xe2\x82\xac")],
        [(b"x-api-key", b"k" * 2000)],
        [(b"x-api-key", b"a"), (b"x-api-key", b"b")],
    ],
)
def test_extract_key_refuses(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(ApiError) as info:
        extract_key(headers)
    assert info.value.status == 401


def test_key_cache_ttls_and_errors() -> None:
    now = [0.0]
    calls: list[str] = []
    who = quota.Principal(account="a", plan="basic")

    def resolve(key: str) -> quota.Principal | None:
        calls.append(key)
        if key == "boom":
            raise RuntimeError("down")
        return who if key == "good" else None

    cache = KeyCache(resolve, ttl=60, negative_ttl=5, max_size=2, clock=lambda: now[0])
    run = asyncio.run
    found = run(cache.lookup("good"))
    assert found is not None and found.key == "good" and found.account == "a"
    assert run(cache.lookup("good")) is found and calls == ["good"]
    assert run(cache.lookup("bad")) is None and run(cache.lookup("bad")) is None
    assert calls == ["good", "bad"]
    now[0] = 5.0  # the negative entry expires first
    assert run(cache.lookup("bad")) is None and calls[-1] == "bad" and len(calls) == 3
    for _ in range(2):
        with pytest.raises(RuntimeError):
            run(cache.lookup("boom"))  # errors are not cached
    assert calls.count("boom") == 2
    now[0] = 60.0
    run(cache.lookup("good"))
    assert calls.count("good") == 2
    run(cache.lookup("x"))
    run(cache.lookup("y"))
    assert len(cache) == 2  # least recently used evicted
    cache.invalidate()
    assert len(cache) == 0


def test_key_cache_async_resolver_and_bad_results() -> None:
    async def resolve(key: str) -> Any:
        return quota.Principal(account="a", plan="go", key="own") if key == "k" else "nonsense"

    cache = KeyCache(resolve)
    found = asyncio.run(cache.lookup("k"))
    assert found is not None and found.key == "own"  # a resolver's own key is kept
    with pytest.raises(TypeError, match="Principal or None"):
        asyncio.run(cache.lookup("other"))


# -- the profile ----------------------------------------------------------------------------


def classify(
    catalog: quota.Catalog,
    body: dict[str, Any],
    path: str = "/v1/chat/completions",
    profile: OpenAIProfile | None = None,
) -> Any:
    classifier = (profile or OpenAIProfile()).bind(catalog)
    return classifier.classify(classifier.route("POST", path), body)


def test_chat_costs_on_zylo() -> None:
    messages = [{"role": "user", "content": "x" * 40}]
    # every string counts, keys too: messages role user content + 40 x = 63 chars, 1 message
    assert estimate_prompt_tokens({"messages": messages}) == 16 + 4
    body = {"model": "small", "messages": messages}
    prompt = estimate_prompt_tokens(body)
    call = classify(ZYLO, body)
    assert call.cost == {"requests": 1, "tokens": prompt + 4096}
    assert call.features == frozenset() and call.model == "small" and not call.stream
    body = {
        "model": "small",
        "messages": messages,
        "max_tokens": 10,
        "max_completion_tokens": 20,
        "n": 3,
        "stream": True,
    }
    call = classify(ZYLO, body)
    assert call.cost["tokens"] == estimate_prompt_tokens(body) + 60 and call.stream
    body = {"model": "small", "max_tokens": 10, "max_new_tokens": 300, "max_output_tokens": 7}
    call = classify(ZYLO, body)  # every spelling of the cap: the largest binds
    assert call.cost["tokens"] == estimate_prompt_tokens(body) + 300
    body = {"model": "gpt-5.5", "messages": messages, "max_tokens": 100}
    call = classify(ZYLO, body)
    assert call.cost["credits"] == ZYLO.price("gpt-5.5", estimate_prompt_tokens(body), 100)


def test_tools_and_images_on_zylo() -> None:
    tools = [
        {"type": "function", "function": {"name": "f"}},
        {"type": "web_search"},
        {"url_context": {}},
        {"type": "code_interpreter"},
        {"type": "file_search"},
    ]
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 1000}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "abcd"}, image, image]}]
    call = classify(ZYLO, {"model": "m", "messages": messages, "tools": tools})
    assert call.features == {"tools", "google_search", "url_context", "code_execution", "images"}
    assert call.cost["google_search"] == 1 and call.cost["url_context"] == 1
    assert call.cost["code_execution"] == 1 and "images" not in call.cost  # no such meter
    body = {"model": "m", "messages": messages, "tools": tools}
    assert call.prompt_tokens == estimate_prompt_tokens(body) + 2 * 765
    assert estimate_prompt_tokens(body) > 2 * 1000 // 4  # the data: URLs count by their size


def test_other_endpoints_and_routes() -> None:
    extract = classify(ZYLO, {"url": "u"}, "/v1/web-extract").cost
    assert extract == {"requests": 1, "web_extract": 1}
    call = classify(ZYLO, {"prompt": "p", "n": 3}, "/v1/images/generations")
    assert call.cost == {"requests": 1, "tokens": 3} and call.features == {"images"}
    # "prompt" "abcd" "max_tokens" 5: 20 chars + 1 number = 6, plus the reserve of 5
    assert classify(ZYLO, {"prompt": "abcd", "max_tokens": 5}, "/generate").cost["tokens"] == 11
    classifier = OpenAIProfile().bind(ZYLO)
    assert classifier.route("POST", "/chat/completions/") == "chat"
    assert classifier.route("GET", "/v1/models/gpt-5.5") == "free"
    assert classifier.route("HEAD", "/v1/models") == "free"
    assert classifier.route("PUT", "/v1/unknown") == "other"
    for method, path in (("GET", "/v1/chat/completions"), ("post", "/v1/chat/completions")):
        with pytest.raises(ApiError) as refused:
            classifier.route(method, path)
        assert refused.value.status == 405 and refused.value.headers == {"Allow": "POST"}
    with pytest.raises(ApiError) as refused:
        classifier.route("POST", "/validate")
    assert refused.value.headers == {"Allow": "GET, HEAD"}
    assert classifier.empty("other").cost == {"requests": 1}
    free = OpenAIProfile(unknown="free", routes={"/my/embed": "embeddings"}).bind(ZYLO)
    assert free.empty("other").cost == {}
    assert free.route("POST", "/v1/my/embed") == "embeddings"
    closed = OpenAIProfile(unknown="deny").bind(ZYLO)
    with pytest.raises(ApiError) as refused:
        closed.route("GET", "/v1/files")
    assert refused.value.status == 404


def test_zyla_charges_only_what_it_knows() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}, {"type": "google_search"}]
    call = classify(ZYLA, {"model": "gpt-5.5", "messages": [], "tools": tools})
    assert call.cost == {"requests": 1} and call.features == frozenset()


def test_a_custom_estimator() -> None:
    profile = OpenAIProfile(estimator=lambda body: 1000, default_max_tokens=10)
    assert classify(ZYLO, {"model": "m"}, profile=profile).cost["tokens"] == 1010
    with pytest.raises(TypeError):
        classify(ZYLO, {"model": "m"}, profile=OpenAIProfile(estimator=lambda body: 1.5))  # type: ignore[arg-type,return-value]


# -- the middleware in-process --------------------------------------------------------------


async def drive(
    app: Any,
    method: str = "POST",
    path: str = "/v1/chat/completions",
    body: bytes = b'{"model": "m", "messages": []}',
    headers: dict[str, str] | None = None,
    scope_type: str = "http",
    raw_path: bytes | None = None,
) -> list[Message]:
    sent: list[Message] = []
    inbox: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        return inbox.pop(0) if inbox else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    raw = [
        (k.lower().encode(), v.encode()) for k, v in (headers or {"x-api-key": "sk-basic"}).items()
    ]
    scope = {"type": scope_type, "method": method, "path": path, "headers": raw, "root_path": ""}
    if raw_path is not None:
        scope["raw_path"] = raw_path
    await app(scope, receive, send)
    return sent


def gateway(
    app: Callable[[Scope, Receive, Send], Any], clock: FakeClock, **kwargs: Any
) -> tuple[quota.QuotaMiddleware, quota.Limiter, quota.Principal]:
    alimiter, limiter = limiter_pair(ZYLO, "memory://", clock)
    who = quota.Principal(account="unit", plan="basic", key="sk-basic")
    kwargs.setdefault("limiter", alimiter)
    return quota.QuotaMiddleware(app, resolve={"sk-basic": who}.get, **kwargs), limiter, who


def left(limiter: quota.Limiter, who: quota.Principal) -> dict[str, int]:
    return {s.name: s.remaining for s in limiter.peek(who)}


def test_lifespan_websocket_options_and_public_paths_pass_through(clock: FakeClock) -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(f"{scope['type']} {scope.get('method')} {scope.get('path')}")
        if scope["type"] == "http":
            await send_json(send, 204, {})

    mw, limiter, who = gateway(app, clock, public_paths=["/health"])
    asyncio.run(drive(mw, scope_type="lifespan"))
    asyncio.run(drive(mw, scope_type="websocket", headers={}))
    preflight = {"origin": "https://app.example", "access-control-request-method": "POST"}
    asyncio.run(drive(mw, method="OPTIONS", body=b"", headers=preflight))
    asyncio.run(drive(mw, method="GET", path="/health", headers={}))
    assert len(seen) == 3  # a websocket is refused: nothing on it is priced
    sent = asyncio.run(drive(mw, scope_type="websocket", path="/v1/realtime"))
    assert sent == [{"type": "websocket.close", "code": 1008}]
    open_mw = quota.QuotaMiddleware(app, limiter=mw.limiter, resolve=dict().get, websockets="pass")
    asyncio.run(drive(open_mw, scope_type="websocket", headers={}))
    asyncio.run(drive(mw, scope_type="websocket", path="/health", headers={}))  # public
    assert len(seen) == 5
    # OPTIONS with a body, or without the preflight headers, is no preflight: never forwarded
    for headers in ({}, {**preflight, "content-length": "30"}):
        sent = asyncio.run(drive(mw, method="OPTIONS", headers=headers))
        assert sent[0]["status"] == 405
        assert (b"allow", b"POST") in sent[0]["headers"]
    assert sent[0]["status"] == 405
    sent = asyncio.run(drive(mw, method="OPTIONS", path="/v1/custom", headers={"origin": "o"}))
    assert sent[0]["status"] == 401
    assert len(seen) == 5
    assert left(limiter, who)["rpd"] == 7200


def test_an_app_error_releases_and_propagates(clock: FakeClock) -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("upstream bug")

    mw, limiter, who = gateway(broken, clock)
    with pytest.raises(RuntimeError, match="upstream bug"):
        asyncio.run(drive(mw))
    assert left(limiter, who)["rpd"] == 7200

    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        return None  # never answers

    mw, limiter, who = gateway(silent, clock)
    asyncio.run(drive(mw))
    assert left(limiter, who)["rpd"] == 7200


def test_an_app_error_after_a_disconnect_settles_what_was_seen(clock: FakeClock) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": sse({"choices": [{"delta": {"content": "abcdefgh"}}]}),
                "more_body": True,
            }
        )
        assert (await receive())["type"] == "http.disconnect"
        raise OSError("client gone")

    mw, limiter, who = gateway(app, clock)
    with pytest.raises(OSError):
        asyncio.run(drive(mw))
    prompt = estimate_prompt_tokens({"model": "m", "messages": []})
    assert left(limiter, who)["tpd"] == 200_000 - prompt - 2  # 8 characters seen
    assert left(limiter, who)["rpd"] == 7199


def test_the_apps_rate_limit_headers_are_replaced(clock: FakeClock) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, {}, {"x-ratelimit-remaining-requests": "999", "x-other": "kept"})

    mw, _, _ = gateway(app, clock)
    start = asyncio.run(drive(mw))[0]
    headers = [(k.decode(), v.decode()) for k, v in start["headers"]]
    assert ("x-ratelimit-remaining-requests", "9") in headers
    assert ("x-ratelimit-remaining-requests", "999") not in headers
    assert ("x-other", "kept") in headers


def test_a_sync_limiter_offloaded_to_a_thread(clock: FakeClock) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, {"usage": {"prompt_tokens": 3, "completion_tokens": 4}})

    _, limiter = limiter_pair(ZYLO, "memory://", clock)
    mw, _, who = gateway(app, clock, limiter=limiter, offload=True)
    assert asyncio.run(drive(mw))[0]["status"] == 200
    assert left(limiter, who)["tpd"] == 200_000 - 7


def test_a_limiter_error_is_a_503(clock: FakeClock) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("not reached")

    alimiter, _ = limiter_pair(ZYLA, "memory://", clock)
    trial = quota.Principal(account="t", plan="trial")  # no cycle_start: the limiter refuses
    mw = quota.QuotaMiddleware(app, limiter=alimiter, resolve=lambda key: trial)
    sent = asyncio.run(drive(mw))
    assert sent[0]["status"] == 503
    assert json.loads(sent[1]["body"])["error"]["code"] == "quota_unavailable"


def test_bad_configuration() -> None:
    alimiter = quota.AsyncLimiter(ZYLO)
    with pytest.raises(ValueError, match="unknown profile"):
        quota.QuotaMiddleware(lambda *a: None, limiter=alimiter, resolve=dict().get, profile="grpc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'charge', 'free' or 'deny'"):
        OpenAIProfile(unknown="closed")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown route kind"):
        OpenAIProfile(routes={"/x": "magic"})  # type: ignore[dict-item]


def test_a_stream_is_settled_before_its_final_event_goes_out(clock: FakeClock) -> None:
    """Usage may be cumulative on every chunk: the stream settles to the largest seen, when it
    ends, before ``[DONE]`` goes out (the client's next request sees it)."""
    seen: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for done in (1, 5):
            usage = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": done}}
            chunk = b"data: " + json.dumps(usage).encode() + b"\n\n"
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            seen.append(left(limiter, who)["tpd"])  # not settled yet: more may come
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True})
        seen.append(left(limiter, who)["tpd"])  # settled before [DONE] went out
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    mw, limiter, who = gateway(app, clock)
    asyncio.run(drive(mw))
    estimate = 200_000 - estimate_prompt_tokens({"model": "m", "messages": []}) - 4096
    assert seen == [estimate, estimate, 200_000 - 8]
    assert left(limiter, who)["tpd"] == 200_000 - 8
