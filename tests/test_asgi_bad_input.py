"""Bad input never reaches the app, never costs anything and never gets a 500: a table of
malformed requests sent byte for byte to a real uvicorn, and hypothesis throwing random
bodies and headers at the middleware (in-process through httpx.ASGITransport, and a few over
the real server)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import FakeClock
from http_servers import AppSlot, limiter_pair, raw_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import quota
from quota.asgi.responses import send_json
from quota.asgi.types import Receive, Scope, Send

CAP = 4096
GOOD = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
PLANS = ("basic", "go")
#: Statuses the middleware may answer on its own; the app behind answers 200.
OWN = {400, 401, 402, 403, 405, 413, 415, 429}  # 405: another method on a known route


async def accept_all(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that answers 200 to anything, so every other status is the middleware's."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    await send_json(send, 200, {"ok": True})


def resolver(tag: str) -> Any:
    keys = {f"sk-{p}": quota.Principal(account=f"{p}-{tag}", plan=p) for p in PLANS}
    keys["sk-ghost"] = quota.Principal(account=f"ghost-{tag}", plan="platinum")

    def resolve(key: str) -> quota.Principal | None:
        if key == "sk-boom":
            raise ConnectionError("the key database is down")
        return keys.get(key)

    return resolve


def build(clock: FakeClock) -> tuple[quota.QuotaMiddleware, quota.Limiter, dict[str, Any]]:
    alimiter, limiter = limiter_pair(quota.Catalog.load("zylo"), "memory://", clock)
    tag = uuid.uuid4().hex[:8]
    mw = quota.QuotaMiddleware(accept_all, limiter=alimiter, resolve=resolver(tag), max_body=CAP)
    who = {p: quota.Principal(account=f"{p}-{tag}", plan=p, key=f"sk-{p}") for p in PLANS}
    return mw, limiter, who


def snapshot(limiter: quota.Limiter, who: dict[str, Any]) -> list[Any]:
    return [limiter.peek(p) for p in who.values()]


def request(
    body: bytes | None = GOOD,
    *,
    auth: bytes | None = b"Bearer sk-basic",
    ctype: bytes | None = b"application/json",
    method: bytes = b"POST",
    path: bytes = b"/v1/chat/completions",
    extra: tuple[bytes, ...] = (),
    length: bytes | None = None,
    chunks: list[bytes] | None = None,
) -> bytes:
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: test", b"Connection: close"]
    if auth is not None:
        lines.append(b"Authorization: " + auth)
    if ctype is not None:
        lines.append(b"Content-Type: " + ctype)
    lines += extra
    if chunks is not None:
        lines.append(b"Transfer-Encoding: chunked")
        payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    else:
        payload = body or b""
        lines.append(b"Content-Length: " + (length or str(len(payload)).encode()))
    return b"\r\n".join(lines) + b"\r\n\r\n" + payload


def body(**fields: Any) -> bytes:
    return json.dumps({"model": "m", "messages": [], **fields}).encode()


CASES: list[tuple[str, bytes, int, str | None]] = [
    ("no key", request(auth=None), 401, "missing_api_key"),
    ("basic auth", request(auth=b"Basic c2stYmFzaWM6"), 401, "invalid_authorization_header"),
    ("empty bearer", request(auth=b"Bearer "), 401, "invalid_authorization_header"),
    ("key with a space", request(auth=b"Bearer sk-basic x"), 401, "invalid_authorization_header"),
    ("non-ascii key", request(auth=b"Bearer sk-b\xc3\xa4sic"), 401, "invalid_authorization_header"),
    ("control byte", request(auth=b"Bearer sk-\x01basic"), 401, "invalid_authorization_header"),
    ("two auth headers", request(extra=(b"Authorization: Bearer sk-go",)), 401, None),
    ("unknown key", request(auth=b"Bearer sk-nope"), 401, "invalid_api_key"),
    ("resolver raises", request(auth=b"Bearer sk-boom"), 503, "auth_unavailable"),
    ("unknown plan", request(auth=b"Bearer sk-ghost"), 503, "plan_unavailable"),
    ("invalid json", request(b'{"model": "m",'), 400, "invalid_json"),
    ("not utf-8", request(b'{"model": "\xff\xfe"}'), 400, "invalid_json"),
    ("deep nesting", request(b"[" * 2000 + b"]" * 2000), 400, None),
    ("json array", request(b"[1, 2]"), 400, "invalid_request_body"),
    ("json string", request(b'"hi"'), 400, "invalid_request_body"),
    ("empty body", request(b""), 400, "invalid_request_body"),
    ("no model", request(b'{"messages": []}'), 400, "missing_required_parameter"),
    ("model not a string", request(body(model=5)), 400, "invalid_type"),
    ("model too long", request(body(model="m" * 300)), 400, "invalid_type"),
    ("max_tokens negative", request(body(max_tokens=-1)), 400, "invalid_value"),
    ("max_tokens zero", request(body(max_tokens=0)), 400, "invalid_value"),
    ("max_tokens huge", request(body(max_tokens=10**30)), 400, "invalid_value"),
    ("max_tokens bool", request(body(max_tokens=True)), 400, "invalid_type"),
    ("max_tokens float", request(body(max_tokens=1.5)), 400, "invalid_type"),
    ("max_tokens string", request(body(max_tokens="100")), 400, "invalid_type"),
    ("max_tokens NaN", request(b'{"model": "m", "max_tokens": NaN}'), 400, "invalid_type"),
    ("max_completion_tokens", request(body(max_completion_tokens=[1])), 400, "invalid_type"),
    ("n zero", request(body(n=0)), 400, "invalid_value"),
    ("stream not bool", request(body(stream="yes")), 400, "invalid_type"),
    ("messages a string", request(body(messages="hi")), 400, "invalid_type"),
    ("message a number", request(body(messages=[1])), 400, "invalid_type"),
    ("tools an object", request(body(tools={})), 400, "invalid_type"),
    ("tool a string", request(body(tools=["google_search"])), 400, "invalid_type"),
    ("tool type a number", request(body(tools=[{"type": 1}])), 400, "invalid_type"),
    ("image n huge", request(body(n=10**6), path=b"/v1/images/generations"), 400, None),
    ("text/plain", request(ctype=b"text/plain"), 415, "unsupported_media_type"),
    ("form", request(ctype=b"application/x-www-form-urlencoded"), 415, None),
    ("over the cap", request(b" " * (CAP + 1)), 413, "request_too_large"),
    ("announced over the cap", request(b"{}", length=b"99999999"), 413, "request_too_large"),
    ("chunked over the cap", request(chunks=[b" " * 3000, b" " * 3000]), 413, None),
    ("chunked invalid", request(chunks=[b'{"model"', b": 1}"]), 400, "invalid_type"),
]


@pytest.mark.parametrize(
    ("raw", "status", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_refused_clearly_and_charges_nothing(
    server: tuple[AppSlot, str], clock: FakeClock, raw: bytes, status: int, code: str | None
) -> None:
    slot, url = server
    slot.app, limiter, who = build(clock)
    before = snapshot(limiter, who)
    response = raw_request(url, raw)
    assert response.status == status, response.body
    error = json.loads(response.body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert snapshot(limiter, who) == before


@pytest.mark.parametrize(
    "raw",
    [
        request(),
        request(ctype=None),  # curl -d without -H: parsed as JSON all the same
        request(ctype=b"application/json; charset=utf-8"),
        request(auth=None, extra=(b"X-API-Key: sk-basic",)),
        request(auth=b"bearer   sk-basic  "),
        request(chunks=[GOOD[:10], GOOD[10:]]),
        request(b" " * 100 + GOOD),
    ],
    ids=["plain", "no content-type", "charset", "x-api-key", "spacing", "chunked", "padded"],
)
def test_good_input_in_unusual_forms_is_admitted(
    server: tuple[AppSlot, str], clock: FakeClock, raw: bytes
) -> None:
    slot, url = server
    slot.app, limiter, who = build(clock)
    response = raw_request(url, raw)
    assert response.status == 200, response.body
    assert response.headers["x-ratelimit-remaining-requests"] == "9"
    assert {s.name: s.remaining for s in limiter.peek(who["basic"])}["rpd"] == 7199


# -- hypothesis -----------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_tools = st.lists(
    st.sampled_from(
        [
            {"type": "function", "function": {"name": "f"}},
            {"type": "google_search"},
            {"url_context": {}},
        ]
    )
    | _json,
    max_size=3,
)
_chat = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["llama", "gpt-5.5", ""]) | _json,
        "messages": st.lists(
            st.fixed_dictionaries(
                {"role": st.just("user"), "content": st.text(max_size=20) | _json}
            ),
            max_size=3,
        )
        | _json,
        "max_tokens": st.integers(-5, 2**40) | _json,
        "max_completion_tokens": st.integers(-5, 10**6) | _json,
        "n": st.integers(-1, 200) | _json,
        "stream": st.booleans() | _json,
        "tools": _tools | _json,
    },
)
BODIES = st.one_of(
    st.binary(max_size=64),
    _json.map(lambda v: json.dumps(v).encode()),
    _chat.map(lambda v: json.dumps(v).encode()),
    st.integers(CAP - 8, CAP + 8).map(lambda n: b" " * n),
)
_header_bytes = st.binary(max_size=24).filter(lambda b: not any(c in b for c in b"\r\n\x00"))
AUTH = st.one_of(
    st.none(),
    st.sampled_from([b"Bearer sk-basic", b"Bearer sk-go", b"Bearer sk-nope", b"Bearer sk-boom"]),
    _header_bytes.map(lambda b: b"Bearer " + b),
    _header_bytes,
)
CTYPE = (
    st.sampled_from([None, b"application/json", b"text/plain", b"application/x+json"])
    | _header_bytes
)
PATHS = st.sampled_from(
    [
        "/v1/chat/completions",
        "/generate",
        "/v1/web-extract",
        "/v1/images/generations",
        "/v1/completions",
        "/v1/models",
        "/stats",
        "/elsewhere",
    ]
)
METHODS = st.sampled_from(["POST", "POST", "GET", "PUT"])


def check(
    status: int, content: bytes, before: list[Any], after: list[Any], key: bytes | None
) -> None:
    assert status != 500
    assert status == 200 or status in OWN or (status == 503 and key == b"Bearer sk-boom"), status
    if status != 200:
        assert set(json.loads(content)["error"]) == {"message", "type", "param", "code"}
        assert after == before  # refused: nothing charged


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES, auth=AUTH, ctype=CTYPE, path=PATHS, method=METHODS)
def test_random_requests_in_process(
    loop: asyncio.AbstractEventLoop,
    clock: FakeClock,
    body: bytes,
    auth: bytes | None,
    ctype: bytes | None,
    path: str,
    method: str,
) -> None:
    mw, limiter, who = build(clock)
    headers = [
        (name, value)
        for name, value in ((b"authorization", auth), (b"content-type", ctype))
        if value is not None
    ]
    before = snapshot(limiter, who)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=mw)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, content=body, headers=headers)

    response = loop.run_until_complete(go())
    check(response.status_code, response.content, before, snapshot(limiter, who), auth)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES, auth=AUTH, ctype=CTYPE, path=PATHS)
def test_random_requests_over_uvicorn(
    server: tuple[AppSlot, str],
    clock: FakeClock,
    body: bytes,
    auth: bytes | None,
    ctype: bytes | None,
    path: str,
) -> None:
    slot, url = server
    slot.app, limiter, who = build(clock)
    before = snapshot(limiter, who)
    response = raw_request(url, request(body, auth=auth, ctype=ctype, path=path.encode()))
    if response.status == 400 and not response.body.startswith(b"{"):
        return  # uvicorn itself refused the bytes (an invalid header): the app never ran
    check(response.status, response.body, before, snapshot(limiter, who), auth)
