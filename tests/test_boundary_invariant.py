"""The boundary invariant, property-tested: no request the principal's plan is not entitled to
ever reaches the app, and what was settled equals the usage the app reported.

A recording app behind QuotaMiddleware re-reads every request it gets with the LIBERAL parser
of ``liberal.py`` and answers with a usage it chose (JSON, or SSE with cumulative usage).
Hypothesis sends hostile paths (``path`` and ``raw_path`` as uvicorn builds them), methods,
content types and bodies on plans basic, go and pro. A refusal must charge nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from conftest import FakeClock
from http_servers import limiter_pair
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from liberal import (
    PLANS,
    POST_ROUTES,
    PREMIUM,
    READ_ROUTES,
    TOKEN_ROUTES,
    Recorder,
    Reply,
    is_read,
    liberal_body,
    liberal_routes,
    normalise,
    route_key,
)

import quota
from quota.asgi.types import Message, Scope

ZYLO = quota.Catalog.load("zylo")
OWN = frozenset({400, 401, 402, 403, 404, 405, 413, 415, 429})  # the middleware's statuses
KEY = "sk-test"

# -- hostile requests -----------------------------------------------------------------------

ROUTE_SEGMENTS = [r.strip("/").split("/") for r in sorted(POST_ROUTES | READ_ROUTES)]
ROUTE_SEGMENTS += [["models", "gpt-5.5"], ["x"], ["v2", "chat"]]
PATH_OPS = ["double", "dot", "dotdot", "dotdot", "enc", "enc", "utf8"] * 2
PATH_OPS += ["climb", "slash", "backslash", "nul"]  # these make the path invalid


@st.composite
def paths(draw: st.DrawFn) -> str:
    """A route, with or without /v1 and a trailing slash, then up to 3 hostile edits."""

    def pick(*options: str) -> str:
        return draw(st.sampled_from(options))

    segs = draw(st.sampled_from([["v1"], []])) + draw(st.sampled_from(ROUTE_SEGMENTS))
    segs += [""] * draw(st.booleans())
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))):
        op = draw(st.sampled_from(PATH_OPS))
        i = draw(st.integers(0, len(segs) - 1))  # never after the last segment
        if op == "double":
            segs.insert(i, "")
        elif op == "dot":
            segs.insert(i, pick(".", "%2e", "%2E"))
        elif op == "dotdot":
            segs[i:i] = [pick("x", "models", "v1"), pick("..", "%2e%2e", ".%2E", "%2E.")]
        elif op == "climb":
            segs.insert(0, pick("..", "%2E%2E"))
        elif op == "enc" and segs[i]:  # %63hat; may split an escape: a lone '%'
            j = draw(st.integers(0, len(segs[i]) - 1))
            escape = pick("%{:02x}", "%{:02X}").format(ord(segs[i][j]))
            segs[i] = segs[i][:j] + escape + segs[i][j + 1 :]
        elif op in ("slash", "backslash") and i + 1 < len(segs):
            glue = pick("%2F", "%2f") if op == "slash" else pick("\\", "%5C", "%5c")
            segs[i : i + 2] = [segs[i] + glue + segs[i + 1]]
        elif op in ("nul", "utf8"):
            segs[i] += "%00" if op == "nul" else pick("%c3%a9", "%ff", "%20", "%7e")
    return "/" + "/".join(segs)


METHODS = ["POST"] * 6 + ["post", "PUT", "PATCH", "DELETE", "GET", "HEAD", "OPTIONS", "*"]
MODELS = st.sampled_from(["llama-3.1-8b", "small", *sorted(PREMIUM)])
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
TEXT |= st.just("data:image/png;base64," + "A" * 64)
MEDIA_PARTS: list[dict[str, Any]] = [
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    {"image_url": {"url": "https://example.com/a.png"}},
    {"type": "input_image", "image_url": "data:image/jpeg;base64,AAAA"},
    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
    {"type": "file", "file": {"file_data": "data:application/pdf;base64,AAAA"}},
    {"type": "input_file", "file_id": "file-1"},
    {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}},
    {"type": "image", "source": {"type": "base64", "data": "AAAA"}},
    {"inline_data": {"mime_type": "image/png", "data": "AAAA"}},
    {"inlineData": {"mimeType": "audio/wav", "data": "AAAA"}},
]
MEDIA = st.sampled_from(MEDIA_PARTS)
TEXT_PART = st.builds(
    lambda t, k: {"type": k, "text": t}, TEXT, st.sampled_from(["text", "input_text"])
)
PART = TEXT_PART | MEDIA | MEDIA.map(lambda m: {"type": "tool_result", "content": [m]})
PART |= MEDIA.map(lambda m: {"type": "function_call_output", "call_id": "c", "output": [m]})
CONTENT = TEXT | st.lists(PART, max_size=3) | PART  # a string, parts, or one dict
ROLES = st.sampled_from(["user", "system", "assistant", "tool"])
MESSAGE = st.fixed_dictionaries({"role": ROLES, "content": CONTENT})
TOOL_NAMES = "google_search web_search web_search_preview google_search_retrieval url_context"
TOOL_NAMES += " web_search_preview_2025_03_11 web_search_2025_08_26 googleSearch urlContext"
TOOL_NAMES += " googleSearchRetrieval code_execution codeExecution code_interpreter f mcp"
TOOL_NAMES += " web_search_20250305 code_execution_20250522"  # Anthropic's dated types
SPELLINGS: list[Callable[[str], dict[str, Any]]] = [
    lambda n: {"type": n},
    lambda n: {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}},
    lambda n: {"type": "function", "name": n},  # Responses API
    lambda n: {n: {}},  # Gemini
    lambda n: {"functionDeclarations": [{"name": n}]},
]
TOOL = st.builds(lambda s, n: s(n), st.sampled_from(SPELLINGS), st.sampled_from(TOOL_NAMES.split()))
PARTS = st.lists(PART, max_size=3)
SHAPES = st.one_of(
    st.fixed_dictionaries({"model": MODELS, "messages": st.lists(MESSAGE, max_size=3)}),
    st.fixed_dictionaries({"model": MODELS, "input": TEXT | st.lists(MESSAGE | PART, max_size=3)}),
    st.fixed_dictionaries({"model": MODELS, "input": st.lists(TEXT, max_size=3)}),
    st.fixed_dictionaries({"model": MODELS, "prompt": TEXT}),
    st.fixed_dictionaries(
        {"model": MODELS, "contents": st.lists(st.builds(dict, parts=PARTS), max_size=2)}
    ),
)
RESERVES = ["max_tokens", "max_completion_tokens", "max_new_tokens", "max_output_tokens"]
EXTRA = st.fixed_dictionaries(
    {},
    optional={
        "tools": st.lists(TOOL, max_size=2),
        "web_search_options": st.just({"search_context_size": "low"}),
        "functions": st.just([{"name": "f", "parameters": {"type": "object"}}]),
        **dict.fromkeys(RESERVES, st.integers(1, 3000) | st.just(250_000)),  # > basic's tpd
        "n": st.integers(1, 3),
        "stream": st.booleans(),
    },
)
FORM = "multipart/form-data; boundary=b0undary"
FILE_PART = 'name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\nRIFF....'


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    ctype = draw(st.sampled_from(["application/json", "", "text/plain", FORM]))
    if draw(st.integers(0, 9)) == 0:
        return ("" if ctype == FORM else ctype), b""
    doc = {**draw(SHAPES), **draw(EXTRA)}
    if ctype != FORM:
        return ctype, json.dumps(doc).encode()
    parts = [f'name="model"\r\n\r\n{doc["model"]}'] + [FILE_PART] * draw(st.booleans())
    text = "".join(f"--b0undary\r\nContent-Disposition: form-data; {p}\r\n" for p in parts)
    return ctype, (text + "--b0undary--\r\n").encode()


REPLY_STYLES = st.sampled_from(["json", "json_responses", "sse", "sse_responses"])
REPLIES = st.builds(Reply, REPLY_STYLES, st.integers(0, 3000), st.integers(1, 3000))

# -- the property ---------------------------------------------------------------------------

FIVE_AND_FIVE = Reply("json", 5, 5)


@dataclass(frozen=True)
class Request:
    plan: str
    method: str
    raw: str  # the path of the request target, as sent on the wire
    ctype: str = "application/json"
    body: bytes = b""
    keyed: bool = True
    cors: bool = False  # Origin and Access-Control-Request-Method headers
    reply: Reply = FIVE_AND_FIVE
    chunked: bool = False  # the body announced by Transfer-Encoding, not Content-Length


METHOD = st.sampled_from(METHODS).flatmap(
    lambda m: (
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=8) if m == "*" else st.just(m)
    )
)
REQUESTS = st.builds(
    lambda plan, method, raw, cb, keyed, cors, reply, chunked: Request(
        plan, method, raw, cb[0], cb[1], keyed, cors, reply, chunked
    ),
    st.sampled_from(sorted(PLANS)),
    METHOD,
    paths(),
    bodies(),
    st.integers(0, 9).map(bool),
    st.booleans(),
    REPLIES,
    st.booleans(),
)


def left(limiter: quota.Limiter, who: quota.Principal) -> dict[str, int]:
    return {s.name: s.remaining for s in limiter.peek(who)}


async def call(app: Any, scope: Scope, body: bytes) -> list[Message]:
    sent: list[Message] = []
    inbox: list[Message] = [{"type": "http.request", "body": body[:7], "more_body": True}]
    inbox.append({"type": "http.request", "body": body[7:], "more_body": False})

    async def receive() -> Message:
        return inbox.pop(0) if inbox else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def check(r: Request) -> None:
    alimiter, limiter = limiter_pair(ZYLO, "memory://", FakeClock())
    who = quota.Principal(account=f"acct-{uuid.uuid4().hex[:8]}", plan=r.plan, key=KEY)
    app = Recorder(r.plan, r.raw, r.keyed, r.reply)
    mw = quota.QuotaMiddleware(app, limiter=alimiter, resolve={KEY: who}.get)
    headers = [(b"host", b"test")] + [(b"authorization", f"Bearer {KEY}".encode())] * r.keyed
    headers += [(b"content-type", r.ctype.encode())] * bool(r.ctype)
    cors = [(b"origin", b"https://a.example"), (b"access-control-request-method", b"POST")]
    headers += cors * r.cors
    length = (
        (b"transfer-encoding", b"chunked")
        if r.chunked
        else (b"content-length", b"%d" % len(r.body))
    )
    headers += [length] * bool(r.body)
    scope: Scope = {"type": "http", "method": r.method, "path": unquote(r.raw), "headers": headers}
    scope.update(raw_path=r.raw.encode(), query_string=b"", root_path="", http_version="1.1")
    before = left(limiter, who)
    sent = asyncio.run(call(mw, scope, r.body))  # the middleware never raises
    after = left(limiter, who)
    assert not app.violations, app.violations
    start = next(m for m in sent if m["type"] == "http.response.start")
    status, out = start["status"], {bytes(k).lower(): bytes(v) for k, v in start["headers"]}
    assert status != 500
    if not app.reached:
        assert status in OWN, status
        content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        assert set(json.loads(content)["error"]) == {"message", "type", "param", "code"}
        assert after == before, "refused, yet charged"
        assert status != 405 or b"allow" in out
        assert status not in (402, 403) or out.get(b"x-should-retry") == b"false"
        assert status != 429 or b"retry-after" in out or out.get(b"x-should-retry") == b"false"
        return
    assert status == 200
    route = route_key(unquote(normalise(r.raw) or ""))
    free = r.method in ("GET", "HEAD") and is_read(route)
    strict = route in TOKEN_ROUTES or (route not in POST_ROUTES and not free)
    strict &= app.seen.parsed and r.ctype in ("", "application/json", FORM)  # not text/plain
    strict &= not app.seen.preflight
    total, spent = r.reply.prompt + r.reply.completion, before["tpd"] - after["tpd"]
    assert spent == total if strict else spent in (0, total), (spent, total, strict)
    if strict and app.seen.model and r.plan != "basic":
        price = ZYLO.price(app.seen.model, r.reply.prompt, r.reply.completion)
        assert before["credits"] - after["credits"] == price


def doc(**fields: Any) -> bytes:
    return json.dumps({"model": "small", **fields}).encode()


PREMIUM_CHAT = doc(model="gpt-5.5", messages=[])
SEARCH = doc(tools=[{"type": "google_search"}])
CODE = doc(tools=[{"type": "code_execution_20250522", "name": "code_execution"}])
GEMINI = doc(contents=[{"parts": [{"inlineData": {"data": "AA"}}]}], tools=[{"urlContext": {}}])


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REQUESTS)
@example(Request("basic", "POST", "/v1/models/%2e%2e/chat/completions", body=PREMIUM_CHAT))
@example(Request("basic", "PUT", "/v1/x/../chat/completions/", body=doc(messages=[])))
@example(
    Request("basic", "OPTIONS", "/v1/chat/completions", body=PREMIUM_CHAT, keyed=False, cors=True)
)
@example(Request("basic", "POST", "/v1/%63hat/completions", "", GEMINI, chunked=True))
@example(
    Request("go", "POST", "/v1//responses/", body=doc(input="x", tools=[{"codeExecution": {}}]))
)
@example(
    Request("pro", "POST", "/v1/./chat/completions", body=PREMIUM_CHAT, reply=Reply("sse", 30, 20))
)
# Found: a JSON body sent as text/plain to an unknown route is priced as opaque text, not
# parsed, so its model, tools and media pass ungated (Starlette's request.json() reads it).
@example(Request("basic", "POST", "/v1/x", "text/plain", SEARCH))
@example(Request("basic", "POST", "/v2/chat", "text/plain", PREMIUM_CHAT))
# Found: Anthropic's dated tool types (code_execution_20250522) are not native tools: a plain
# function tool on go, which has no code_execution.
@example(Request("go", "POST", "/v1/x", body=CODE))
def test_nothing_unentitled_reaches_the_app_and_settled_is_what_it_reported(r: Request) -> None:
    check(r)


def test_the_liberal_parser_sees_every_spelling() -> None:
    """The oracle itself: each spelling of a tool or a media part is seen."""
    for tool in SPELLINGS[:4]:  # functionDeclarations: user functions only
        for name, feature in [("googleSearch", "search"), ("code_interpreter", "code_execution")]:
            assert feature in liberal_body(doc(tools=[tool(name)]), "").features, tool(name)
        assert liberal_body(doc(tools=[tool("f")]), "").features == {"tools"}
    assert liberal_body(doc(web_search_options={}), "").features == {"tools", "search"}
    assert liberal_body(doc(functions=[{"name": "f"}]), "text/plain").features == {"tools"}
    for part in MEDIA_PARTS:
        nested = {
            "type": "function_call_output",
            "output": [{"type": "tool_result", "content": part}],
        }
        assert liberal_body(doc(input=[nested]), "").features == {"images"}, part
    text = doc(messages=[{"role": "user", "content": "data:image/png,A"}])
    assert liberal_body(text, "").features == set()  # a data: string is text
    form = b'--b0undary\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-5.5\r\n'
    assert liberal_body(form, FORM).model == "gpt-5.5"
    assert liberal_routes("/v1/models/../chat/completions") == {"/chat/completions"}
    assert "/chat/completions" in liberal_routes("/v1\\chat\\completions")
    assert normalise("/v1/%63hat//./x/%2E./completions/") == "/v1/chat/completions/"
    assert normalise("/v1/%c3%a9%7e") == "/v1/%C3%A9~"
    for invalid in ("/../v1", "/a%2Fb", "/a%5c", "/a\\b", "/a%00", "/%ff"):
        assert normalise(invalid) is None, invalid
