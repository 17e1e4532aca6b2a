"""The boundary's parts in-process: path normalisation, the tool normaliser, the media walk,
body formats, bounded inflation, and ``x-should-retry`` on denials that can never succeed."""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any

import pytest
from conftest import FakeClock
from test_asgi_units import drive, gateway, left

import quota
from quota.asgi import OpenAIProfile, UsageReader, estimate_prompt_tokens
from quota.asgi.content import media_parts
from quota.asgi.paths import normalise
from quota.asgi.responses import ApiError, send_json
from quota.asgi.tools import ToolReader
from quota.asgi.types import Receive, Scope, Send

# -- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "path", "raw_path"),
    [
        (b"/v1/chat/completions", "/v1/chat/completions", "/v1/chat/completions"),
        (b"/v1/models/../chat/completions", "/v1/chat/completions", "/v1/chat/completions"),
        (b"/v1/models/%2e%2e/chat/completions", "/v1/chat/completions", "/v1/chat/completions"),
        (b"/v1/models/.%2E/chat/completions", "/v1/chat/completions", "/v1/chat/completions"),
        (b"//v1///chat/./completions/", "/v1/chat/completions/", "/v1/chat/completions/"),
        (b"/v1/%63hat/completions", "/v1/chat/completions", "/v1/chat/completions"),
        (b"/v1/files/a%20b/%c3%a9", "/v1/files/a b/\u00e9", "/v1/files/a%20b/%C3%A9"),
        (b"/a/b/..", "/a/", "/a/"),
        (b"/.well-known/x", "/.well-known/x", "/.well-known/x"),
    ],
)
def test_paths_are_normalised(raw: bytes, path: str, raw_path: str) -> None:
    assert normalise(raw) == (path, raw_path)


@pytest.mark.parametrize(
    "raw", [b"/..", b"/a/../../b", b"/a%2Fb", b"/a%2fb", b"/a%5Cb", b"/a\\b", b"/a%00b", b"/%ff"]
)
def test_ambiguous_paths_are_refused(raw: bytes) -> None:
    with pytest.raises(ApiError) as refused:
        normalise(raw)
    assert refused.value.status == 400 and refused.value.code == "invalid_path"


def test_the_app_sees_the_normalised_path_and_refusals_charge_nothing(clock: FakeClock) -> None:
    seen: list[tuple[str, bytes]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope["path"], scope["raw_path"]))
        await send_json(send, 200, {})

    mw, limiter, who = gateway(app, clock)
    raw = b"/v1/models/%2e%2e/chat/completions"
    sent = asyncio.run(drive(mw, path="/v1/models/../chat/completions", raw_path=raw))
    assert sent[0]["status"] == 200
    assert seen == [("/v1/chat/completions", b"/v1/chat/completions")]
    assert left(limiter, who)["rpd"] == 7199  # priced as the chat it is
    sent = asyncio.run(drive(mw, path="/v1/models/../chat/completions"))  # no raw_path
    assert sent[0]["status"] == 200 and seen[-1][0] == "/v1/chat/completions"
    assert left(limiter, who)["rpd"] == 7198
    seen.clear()
    sent = asyncio.run(drive(mw, path="/v1/chat/completions", raw_path=b"/v1/chat%2Fcompletions"))
    assert sent[0]["status"] == 400 and json.loads(sent[1]["body"])["error"]["code"] == (
        "invalid_path"
    )
    assert not seen and left(limiter, who)["rpd"] == 7198


# -- tools ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tools", "features", "native"),
    [
        ([{"type": "web_search_preview_2025_03_11"}], {"google_search"}, ["google_search"]),
        ([{"type": "web_search_2025_08_26"}], {"google_search"}, ["google_search"]),
        ([{"googleSearch": {}}], {"google_search"}, ["google_search"]),
        ([{"googleSearchRetrieval": {}}], {"google_search"}, ["google_search"]),
        ([{"urlContext": {}}, {"codeExecution": {}}], {"url_context", "code_execution"}, None),
        (
            [{"type": "function", "function": {"name": "google_search"}}],
            {"tools", "google_search"},
            ["google_search"],
        ),
        (
            [{"type": "function", "function": {"name": "code_execution"}}],
            {"tools", "code_execution"},
            ["code_execution"],
        ),
        ([{"type": "function", "name": "url_context"}], {"tools", "url_context"}, None),
        ([{"type": "mcp", "server_url": "u"}], {"tools"}, []),
        ([{"type": "file_search"}], {"tools"}, []),
        ([{"functionDeclarations": [{"name": "f"}]}], {"tools"}, []),
        ([{"googleSearch": {}, "functionDeclarations": []}], {"tools", "google_search"}, None),
        ([{}], {"tools"}, []),
    ],
)
def test_every_spelling_of_a_tool(
    tools: list[dict[str, Any]], features: set[str], native: list[str] | None
) -> None:
    found, used = ToolReader().read({"tools": tools})
    assert found == features
    if native is not None:
        assert used == native


def test_web_search_options_and_legacy_functions() -> None:
    assert ToolReader().read({"web_search_options": {}}) == ({"google_search"}, ["google_search"])
    assert ToolReader().read({"functions": [{"name": "f"}]}) == ({"tools"}, [])
    with pytest.raises(ApiError):
        ToolReader().read({"functions": "f"})


# -- media and the estimate -----------------------------------------------------------------


def test_media_parts_wherever_they_sit() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    body = {
        "messages": [
            {"role": "user", "content": [{"image_url": {"url": "u"}}]},  # no type
            {"role": "user", "content": image},  # content a dict
            {"role": "tool", "content": [{"type": "input_audio", "input_audio": {}}]},
            {"role": "user", "content": [{"type": "file", "file": {"file_data": "x"}}]},
            {"role": "user", "content": [{"type": "video_url", "video_url": {"url": "v"}}]},
            {"role": "user", "content": [{"type": "hologram", "data": "?"}]},  # unknown part
        ],
        "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}],
        "response_format": {"json_schema": {"schema": {"properties": {"image": {}}}}},
        "metadata": {"file": "a label"},
    }
    assert media_parts(body) == {"image": 2, "audio": 1, "file": 3, "video": 1}
    assert media_parts({"contents": [{"parts": [{"inline_data": {"mime_type": "image/png"}}]}]})
    assert not media_parts({"messages": [{"role": "user", "content": [{"type": "text"}]}]})


def test_every_string_counts_data_urls_too() -> None:
    hidden = {"messages": [{"role": "user", "content": "data:" + "x" * 400_000}]}
    assert estimate_prompt_tokens(hidden) >= 100_000
    schema = {"response_format": {"type": "json_schema", "json_schema": {"x": "y" * 4000}}}
    assert estimate_prompt_tokens(schema) >= 1000
    assert estimate_prompt_tokens({"prompt": list(range(500))}) >= 500  # token ids


# -- the body decides, on every route ---------------------------------------------------------


def answer(usage: dict[str, int] | None = None) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, {"usage": usage} if usage else {})

    return app


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/custom/anything", {"model": "gpt-5.5", "input": "hi"}),
        ("/v1/responses", {"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}),
        ("/v1/responses", {"model": "m", "input": [{"type": "input_image", "image_url": "u"}]}),
        ("/v1/embeddings", {"model": "claude-opus-4.8", "input": "hi"}),
        ("/v1/something", {"messages": [{"role": "user", "content": [{"image_url": "u"}]}]}),
    ],
)
def test_basic_is_refused_whatever_the_route(
    clock: FakeClock, path: str, body: dict[str, Any]
) -> None:
    mw, limiter, who = gateway(answer(), clock)
    sent = asyncio.run(drive(mw, path=path, body=json.dumps(body).encode()))
    assert sent[0]["status"] == 403
    assert (b"x-should-retry", b"false") in sent[0]["headers"]
    assert left(limiter, who)["rpd"] == 7200


def test_embeddings_reserve_no_output_and_unknown_routes_do(clock: FakeClock) -> None:
    mw, limiter, who = gateway(answer(), clock)
    body = {"model": "m", "input": "x" * 400}
    asyncio.run(drive(mw, path="/v1/embeddings", body=json.dumps(body).encode()))
    assert left(limiter, who)["tpd"] == 200_000 - estimate_prompt_tokens(body)
    unknown = {"model": "m", "prompt": "hello"}
    start = asyncio.run(drive(mw, path="/v1/new/thing", body=json.dumps(unknown).encode()))[0]
    reserved = 200_000 - estimate_prompt_tokens(body) - estimate_prompt_tokens(unknown) - 4096
    assert (b"x-ratelimit-remaining-tokens", str(reserved).encode()) in start["headers"]


def test_duplicate_keys_and_forms(clock: FakeClock) -> None:
    mw, limiter, who = gateway(answer(), clock)
    dup = b'{"model": "llama", "model": "gpt-5.5", "messages": []}'
    sent = asyncio.run(drive(mw, body=dup))
    assert sent[0]["status"] == 400 and b"duplicate_key" in sent[1]["body"]
    form = (
        b'--B\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-image-1\r\n'
        b'--B\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n\x89PNG...\r\n--B--\r\n"
    )
    headers = {"x-api-key": "sk-basic", "content-type": "multipart/form-data; boundary=B"}
    sent = asyncio.run(drive(mw, path="/v1/images/edits", body=form, headers=headers))
    assert sent[0]["status"] == 403  # an uploaded image on a text-only plan
    headers["content-type"] = "text/plain"
    sent = asyncio.run(drive(mw, path="/v1/chat/completions", body=b"hi", headers=headers))
    assert sent[0]["status"] == 415
    gzipped = {"x-api-key": "sk-basic", "content-encoding": "gzip"}
    sent = asyncio.run(drive(mw, path="/v1/other", body=b"\x1f\x8b...", headers=gzipped))
    assert sent[0]["status"] == 415  # the app might inflate what would be priced as opaque
    assert left(limiter, who)["rpd"] == 7200


def test_x_should_retry_only_when_waiting_cannot_help(clock: FakeClock) -> None:
    mw, _, _ = gateway(answer(), clock)
    huge = {"model": "m", "messages": [], "max_tokens": 300_000}  # above the daily 200k
    start = asyncio.run(drive(mw, body=json.dumps(huge).encode()))[0]
    assert start["status"] == 429 and (b"x-should-retry", b"false") in start["headers"]
    for _ in range(10):
        asyncio.run(drive(mw))
    start = asyncio.run(drive(mw))[0]  # the 11th in a minute: it will succeed later
    names = {k for k, _ in start["headers"]}
    assert start["status"] == 429 and b"retry-after" in names
    assert b"x-should-retry" not in names


# -- responses --------------------------------------------------------------------------------


def test_cumulative_stream_usage_settles_the_largest() -> None:
    reader = UsageReader(b"text/event-stream")
    for done in range(1, 6):
        usage = {"prompt_tokens": 7, "completion_tokens": done, "total_tokens": 7 + done}
        reader.feed(b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n")
        assert not reader.complete
    reader.feed(b"data: [DONE]\n\n")
    assert reader.complete and reader.tokens(0) == (7, 5)
    responses = UsageReader(b"text/event-stream")
    done_event = {"type": "response.completed", "response": {"usage": {"input_tokens": 3}}}
    responses.feed(b"data: " + json.dumps(done_event).encode() + b"\n\n")
    assert responses.complete


def test_a_gzip_bomb_is_inflated_with_a_bound() -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    bomb = b"".join(packer.compress(block) for _ in range(256)) + packer.flush()
    assert len(bomb) < (1 << 20)  # 256 MiB of zeros in well under 1 MiB
    reader = UsageReader(b"application/json", b"gzip", max_inflated=4 << 20)
    reader.feed(bomb)
    reader.feed(bomb)
    reader.finish()
    assert reader.inflated <= 4 << 20 and reader.capped
    assert reader.tokens(10) is None  # past the cap the estimate stands


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/v1/chat/completions", {"model": "GPT-5.5", "messages": []}, {}),
        ("/v1/chat/completions", {"model": "openai/gpt-5.5", "messages": []}, {}),
        ("/v1/chat/completions", {"model": "models/gpt-5.5:latest", "messages": []}, {}),
        ("/v1beta/models/gemini-3.1-pro-preview:generateContent", {"contents": []}, {}),
        ("/V1/IMAGES/GENERATIONS", {"prompt": "a cat"}, {}),
        ("/v1/images/generations;x=1", {"prompt": "a cat"}, {}),
        ("/v1/audio/speech", {"model": "tts", "input": "hi", "voice": "alloy"}, {}),
        ("/v1/x", {"model": "m", "tool_choice": {"type": "web_search_preview"}}, {}),
        ("/v1/x", {"model": "m", "tools": [{"type": "web_search_20250305"}]}, {}),
        ("/v1/x", {"model": "gpt-5.5"}, {"content-type": "text/plain"}),  # JSON, whatever label
    ],
)
def test_spellings_an_upstream_may_serve_are_gated(
    clock: FakeClock, path: str, body: dict[str, Any], headers: dict[str, str]
) -> None:
    mw, limiter, who = gateway(answer(), clock)
    sent = asyncio.run(
        drive(
            mw,
            path=path,
            body=json.dumps(body).encode(),
            headers={"x-api-key": "sk-basic", **headers},
        )
    )
    assert sent[0]["status"] == 403, sent
    assert left(limiter, who)["rpd"] == 7200


def test_a_model_in_the_path_and_another_in_the_body_is_refused(clock: FakeClock) -> None:
    mw, _, _ = gateway(answer(), clock)
    body = json.dumps({"model": "llama-3.1-8b", "contents": []}).encode()
    sent = asyncio.run(drive(mw, path="/v1beta/models/gpt-5.5:generateContent", body=body))
    assert sent[0]["status"] == 400 and b"model_mismatch" in sent[1]["body"]


def test_the_catalog_adds_tool_spellings_through_its_aliases() -> None:
    data = quota.Catalog.load("zylo").model_dump()
    data["meters"]["aliases"]["bing_search"] = "search"
    classifier = OpenAIProfile().bind(quota.Catalog.load(data))
    call = classifier.classify("chat", {"model": "m", "tools": [{"type": "bing_search"}]})
    assert call.features == {"bing_search"} and call.cost["bing_search"] == 1
