"""The stand-in upstream of ``quota serve`` on its own, over real HTTP (uvicorn on a free port):
its routes and methods, ``X-Upstream-Status``, and each endpoint's body and ``usage`` as the
official ``openai`` client and httpx read them."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from http_servers import AppSlot, raw_request

from quota.asgi import estimate_prompt_tokens
from quota.asgi.routes import ROUTES, allowed_methods, kind_of
from quota.cli.upstream import DEFAULT_MODELS, StandInUpstream
from quota.cli.upstream_replies import OUTPUT_CAPS, reply_words

CLOSE = b"Connection: close\r\nContent-Length: 0\r\n\r\n"
INTRO = len(reply_words({})) - 1  # the fixed words before the quote ("nothing" quoted here)


@pytest.fixture
def url(server: tuple[AppSlot, str]) -> Iterator[str]:
    slot, base = server
    slot.app = StandInUpstream()
    yield base


@pytest.fixture
def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="sk-any", max_retries=0)


def error_code(r: httpx.Response) -> str:
    assert r.headers["content-type"] == "application/json"
    body = r.json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    code: str = body["code"]
    return code


# -- routes and methods ---------------------------------------------------------------------


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("prefix", ["", "/v1"])
def test_another_method_on_a_known_route_is_405_with_allow(
    url: str, route: str, prefix: str
) -> None:
    allowed = allowed_methods(kind_of(route))
    other = "GET" if "POST" in allowed else "POST"
    for method in ("PUT", "PATCH", "DELETE", "OPTIONS", other):
        r = httpx.request(method, f"{url}{prefix}{route}", json={"model": "m"})
        assert r.status_code == 405, (method, route)
        assert r.headers["allow"] == ", ".join(allowed)
        assert error_code(r) == "method_not_allowed"
    lower = allowed[0].lower().encode()  # methods are case-sensitive: httpx would upper-case it
    raw = raw_request(url, lower + f" {prefix}{route} HTTP/1.1\r\nHost: x\r\n".encode() + CLOSE)
    assert raw.status == 405 and raw.headers["allow"] == ", ".join(allowed)


def test_read_routes_answer_head_without_a_body(url: str) -> None:
    for path in ("/v1/models", "/v1/models/gpt-5.5", "/stats", "/v1/validate"):
        r = httpx.head(f"{url}{path}")
        assert r.status_code == 200 and r.content == b"", path


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "OPTIONS"])
@pytest.mark.parametrize("path", ["/", "/v1", "/v1/nope", "/v1/chat", "/chat/completions/x"])
def test_an_unknown_path_is_404(url: str, method: str, path: str) -> None:
    r = httpx.request(method, f"{url}{path}", json={})
    assert r.status_code == 404 and error_code(r) == "not_found"
    assert "allow" not in r.headers


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == list(DEFAULT_MODELS)
    assert client.models.retrieve("gpt-5.5").owned_by == "stand-in"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.code == "model_not_found"


def test_stats_and_validate_alone(url: str) -> None:
    assert httpx.get(f"{url}/validate").json() == {"valid": True}
    assert httpx.get(f"{url}/v1/stats").json()["requests_served"] >= 1


# -- X-Upstream-Status ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 429, 500, 502, 503, 599])
def test_upstream_status_fails_as_asked(url: str, status: int) -> None:
    r = httpx.post(
        f"{url}/v1/chat/completions", json={}, headers={"X-Upstream-Status": str(status)}
    )
    assert r.status_code == status and error_code(r) == "upstream_error"


@pytest.mark.parametrize(
    "value",
    [
        b"abc",
        b"200",
        b"399",
        b"600",
        b"5033",
        b"50",
        b"+50",
        b"5 3",
        b"",
        b"503,503",
        b"\xd9\xa5\xd9\xa0\xd9\xa3",
    ],
)
def test_a_malformed_upstream_status_is_400(url: str, value: bytes) -> None:
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\nX-Upstream-Status: "
        + value
        + b"\r\n\r\n{}"
    )
    r = raw_request(url, request)
    assert r.status == 400 and r.headers["content-type"] == "application/json"
    assert b'"invalid_upstream_status"' in r.body


def test_several_upstream_status_values_are_400(url: str) -> None:
    headers = [("X-Upstream-Status", "503"), ("X-Upstream-Status", "503")]
    r = httpx.post(f"{url}/v1/chat/completions", json={}, headers=headers)
    assert r.status_code == 400 and error_code(r) == "invalid_upstream_status"


# -- chat, completions, /generate -----------------------------------------------------------


def test_chat_usage_is_the_estimate_and_the_words(client: openai.OpenAI) -> None:
    body: dict[str, Any] = {
        "model": "m",
        "messages": [{"role": "user", "content": "one two three"}],
    }
    reply = client.chat.completions.create(**body)
    assert reply.choices[0].message.content.endswith("said: one two three")
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == estimate_prompt_tokens(body)
    assert reply.usage.completion_tokens == INTRO + 3
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + INTRO + 3
    assert reply.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("cap", OUTPUT_CAPS)
@pytest.mark.parametrize("path", ["/v1/completions", "/generate", "/v1/chat/completions"])
def test_every_output_cap_cuts_the_reply(url: str, cap: str, path: str) -> None:
    body = {"model": "m", "prompt": "a b c", "messages": [{"role": "user", "content": "x"}], cap: 4}
    r = httpx.post(f"{url}{path}", json=body)
    assert r.status_code == 200
    assert r.json()["usage"]["completion_tokens"] == 4
    assert r.json()["choices"][0]["finish_reason"] == "length"


def chat_stream(client: openai.OpenAI, **options: Any) -> list[Any]:
    return list(
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "a b c"}], stream=True, **options
        )
    )


def test_a_stream_without_stream_options_has_no_usage(client: openai.OpenAI) -> None:
    chunks = chat_stream(client)
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.endswith("said: a b c") and chunks[-1].choices[0].finish_reason == "stop"


def test_include_usage_puts_the_usage_on_a_last_chunk(client: openai.OpenAI) -> None:
    chunks = chat_stream(client, stream_options={"include_usage": True})
    assert all(c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.choices == [] and last.usage.completion_tokens == INTRO + 3


def test_continuous_usage_stats_put_cumulative_usage_on_every_chunk(client: openai.OpenAI) -> None:
    options = {"include_usage": True, "continuous_usage_stats": True}
    chunks = chat_stream(client, stream_options=options, max_tokens=8)
    counts = [c.usage.completion_tokens for c in chunks]
    assert counts == [*range(1, 9), 8, 8]  # a chunk per word, the finish, the usage chunk
    assert {c.usage.prompt_tokens for c in chunks} == {chunks[-1].usage.prompt_tokens}
    assert chunks[-2].choices[0].finish_reason == "length"


def test_a_completions_stream_ends_with_done(url: str) -> None:
    body = {"model": "m", "prompt": "p", "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{url}/v1/completions", json=body) as r:
        assert r.headers["content-type"] == "text/event-stream"
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and '"usage":{"prompt_tokens"' in lines[-2]


# -- /v1/responses --------------------------------------------------------------------------


def test_responses_json(client: openai.OpenAI) -> None:
    body: dict[str, Any] = {"model": "gpt-5.5", "input": "tell me", "instructions": "be brief"}
    response = client.responses.create(**body)
    assert response.status == "completed" and response.output_text.endswith("said: tell me")
    assert (
        response.output[0].type == "message" and response.output[0].content[0].type == "output_text"
    )
    assert response.usage is not None
    assert response.usage.input_tokens == estimate_prompt_tokens(body)
    assert response.usage.output_tokens == INTRO + 2
    assert response.usage.total_tokens == response.usage.input_tokens + INTRO + 2


def test_responses_input_items_and_the_output_cap(client: openai.OpenAI) -> None:
    items: Any = [{"role": "user", "content": [{"type": "input_text", "text": "quote me"}]}]
    response = client.responses.create(model="m", input=items, max_output_tokens=16)
    assert response.output_text.endswith("said: quote me")
    response = client.responses.create(model="m", input=items, max_output_tokens=3)
    assert (
        response.status == "incomplete"
        and response.incomplete_details.reason == "max_output_tokens"
    )
    assert response.usage.output_tokens == 3 and response.output_text == "This is the"


def test_responses_streamed_events(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="m", input="stream me", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    final = events[-1].response
    assert "".join(deltas) == final.output_text and final.output_text.endswith("said: stream me")
    assert events[0].response.usage is None and final.usage.output_tokens == len(deltas)
    assert len({e.response.id for e in (events[0], events[-1])}) == 1


def test_responses_stream_helper_and_the_incomplete_event(client: openai.OpenAI) -> None:
    with client.responses.stream(model="m", input="helped") as stream:
        final = stream.get_final_response()
    assert final.output_text.endswith("said: helped") and final.usage.total_tokens > 0
    events = list(client.responses.create(model="m", input="x", max_output_tokens=2, stream=True))
    assert events[-1].type == "response.incomplete" and events[-1].response.usage.output_tokens == 2


# -- embeddings, moderations, images, web-extract, audio ------------------------------------


def test_embeddings(client: openai.OpenAI, url: str) -> None:
    body: dict[str, Any] = {"model": "text-embedding-3-small", "input": ["alpha", "beta", "alpha"]}
    result = client.embeddings.create(**body)  # it asks for base64 and decodes it
    vectors = [d.embedding for d in result.data]
    assert [d.index for d in result.data] == [0, 1, 2]
    assert len(vectors[0]) == 8 and vectors[0] == vectors[2] != vectors[1]
    assert all(-1 <= x <= 1 for x in vectors[0])
    assert result.usage.prompt_tokens == result.usage.total_tokens > 0
    usage = httpx.post(f"{url}/v1/embeddings", json=body).json()["usage"]
    tokens = estimate_prompt_tokens(body)
    assert usage == {"prompt_tokens": tokens, "total_tokens": tokens}
    again = client.embeddings.create(model="e", input="alpha", dimensions=4)
    assert len(again.data[0].embedding) == 4
    tokens = client.embeddings.create(model="e", input=[1, 2, 3])
    assert len(tokens.data) == 1  # one token array is one input


def test_embeddings_in_base64(url: str) -> None:
    floats = httpx.post(f"{url}/v1/embeddings", json={"input": "x"}).json()["data"][0]["embedding"]
    body = {"input": "x", "encoding_format": "base64"}
    packed = httpx.post(f"{url}/v1/embeddings", json=body).json()["data"][0]["embedding"]
    assert struct.unpack("<8f", base64.b64decode(packed)) == pytest.approx(floats, abs=1e-6)


def test_moderations_images_and_web_extract(client: openai.OpenAI, url: str) -> None:
    moderation = client.moderations.create(input=["a", "b"])
    assert [r.flagged for r in moderation.results] == [False, False]
    assert len(client.images.generate(prompt="a cat", n=3).data) == 3
    b64 = client.images.generate(prompt="a cat", response_format="b64_json").data[0].b64_json
    assert base64.b64decode(b64).startswith(b"\x89PNG")
    edited = client.images.edit(image=("a.png", b"\x89PNG\r\n", "image/png"), prompt="hat")
    assert edited.data[0].url is not None
    page = httpx.post(f"{url}/v1/web-extract", json={"url": "https://example.com"}).json()
    assert page["content"] == "Stand-in content of https://example.com."


def test_bad_bodies_and_audio(url: str) -> None:
    r = httpx.post(f"{url}/v1/chat/completions", content=b"[1, 2]")
    assert r.status_code == 400 and error_code(r) == "invalid_request_body"
    r = httpx.post(f"{url}/v1/embeddings", json={"model": "e"})
    assert r.status_code == 400 and "'input'" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/v1/audio/transcriptions", files={"file": ("a.wav", b"RIFF")})
    assert r.status_code == 501 and error_code(r) == "not_implemented"
