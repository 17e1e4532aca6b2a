"""Input and output tokens as meters of their own (issue 15): the ``openai`` profile charges
``input_tokens`` = the prompt estimate and ``output_tokens`` = the output reserve, and settles
each to the usage the upstream reports, over real HTTP (uvicorn, the official ``openai``
client), JSON and streams alike; ``tokens`` keeps working beside them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from conftest import FakeClock, storage_url
from http_servers import BACKENDS, AppSlot, limiter_pair

import quota
from quota.asgi import OpenAIProfile, UsageReader, estimate_prompt_tokens
from quota.asgi.types import Receive, Scope, Send
from quota.cli.upstream import StandInUpstream

IPD = {"name": "ipd", "meter": "input_tokens", "rate": "10000/day", "algorithm": "calendar"}
OPD = {"name": "opd", "meter": "output_tokens", "rate": "2000/day", "algorithm": "calendar"}
TPD = {"name": "tpd", "meter": "tokens", "rate": "50000/day", "algorithm": "calendar"}
CATALOG = quota.Catalog.load(
    {
        "name": "io",
        "meters": {"names": ["requests", "tokens", "input_tokens", "output_tokens"]},
        "plans": {"split": {"limits": [IPD, OPD]}, "both": {"limits": [IPD, OPD, TPD]}},
    }
)
SPLIT_ONLY = quota.Catalog.load({"name": "split", "plans": {"p": {"limits": [IPD, OPD]}}})
HI = [{"role": "user", "content": "hello there"}]
PROMPT, COMPLETION = 321, 45  # what the test upstream reports, far from the estimate


class ReportingUpstream:
    """Answers chat completions with fixed ``usage`` (PROMPT in, COMPLETION out): JSON, or an
    SSE stream whose every chunk carries the usage so far (vLLM) and a last usage chunk."""

    def __init__(self) -> None:
        self.served = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.served += 1
        raw = b""
        while (message := await receive())["type"] == "http.request":
            raw += message.get("body", b"")
            if not message.get("more_body", False):
                break
        body = json.loads(raw)
        head = {"id": "chatcmpl-1", "created": 0, "model": body["model"]}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "ok"}
            choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
            reply = {**head, "object": "chat.completion", "choices": [choice], "usage": usage()}
            await start(send, b"application/json")
            await chunk(send, json.dumps(reply).encode(), last=True)
            return
        await start(send, b"text/event-stream")
        head["object"] = "chat.completion.chunk"
        for done in range(1, COMPLETION + 1):  # the usage so far on every chunk, as vLLM does
            delta = {"index": 0, "delta": {"content": "w "}, "finish_reason": None}
            await chunk(send, sse({**head, "choices": [delta], "usage": usage(done)}))
        last = sse({**head, "choices": [], "usage": usage()})
        await chunk(send, last + b"data: [DONE]\n\n", last=True)


def usage(completion: int = COMPLETION) -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT,
        "completion_tokens": completion,
        "total_tokens": PROMPT + completion,
    }


def sse(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event).encode() + b"\n\n"


async def start(send: Send, ctype: bytes) -> None:
    headers = [(b"content-type", ctype)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})


async def chunk(send: Send, body: bytes, last: bool = False) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": not last})


@dataclass
class Gateway:
    url: str
    limiter: quota.Limiter
    who: quota.Principal
    upstream: Any

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="sk-io", max_retries=0)

    def remaining(self) -> dict[str, int]:
        return {s.name: s.remaining for s in self.limiter.peek(self.who)}


@pytest.fixture(params=[(b, p) for b in BACKENDS for p in ("split", "both")])
def gw(
    request: pytest.FixtureRequest, server: tuple[AppSlot, str], clock: FakeClock
) -> Iterator[Gateway]:
    slot, url = server
    backend, plan = request.param
    alimiter, limiter = limiter_pair(CATALOG, storage_url(request, backend), clock)
    who = quota.Principal(account=f"acct-{uuid.uuid4().hex[:8]}", plan=plan, key="sk-io")
    upstream = ReportingUpstream()
    slot.app = quota.QuotaMiddleware(upstream, limiter=alimiter, resolve={"sk-io": who}.get)
    yield Gateway(url, limiter, who, upstream)
    limiter.close()


def spent(gw: Gateway, inp: int, out: int) -> None:
    """The account used ``inp`` input and ``out`` output tokens (and their sum on ``tpd``)."""
    want = {"ipd": 10000 - inp, "opd": 2000 - out}
    if gw.who.plan == "both":
        want["tpd"] = 50000 - inp - out
    assert gw.remaining() == want


# -- over HTTP ------------------------------------------------------------------------------


def test_a_json_reply_settles_input_and_output_apart(gw: Gateway) -> None:
    reply = gw.client().chat.completions.create(model="m", messages=HI, max_tokens=500)
    assert reply.usage is not None and reply.usage.prompt_tokens == PROMPT
    spent(gw, PROMPT, COMPLETION)  # not the estimate, not the 500 reserved


def test_a_stream_settles_input_and_output_apart(gw: Gateway) -> None:
    stream = gw.client().chat.completions.create(
        model="m",
        messages=HI,
        max_tokens=1500,
        n=1,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == COMPLETION
    spent(gw, PROMPT, COMPLETION)


def test_an_output_reserve_above_the_output_cap_never_reaches_the_app(gw: Gateway) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        gw.client().chat.completions.create(model="m", messages=HI, max_tokens=1001, n=2)
    response = info.value.response
    assert response.json()["error"]["message"].startswith("limit 'opd'")
    assert response.headers["x-should-retry"] == "false"  # 2002 > 2000: it never fits
    assert gw.upstream.served == 0
    spent(gw, 0, 0)
    gw.client().chat.completions.create(model="m", messages=HI, max_tokens=1000, n=2)
    assert gw.upstream.served == 1


def test_the_stand_in_upstream_settles_responses_streams_apart(
    server: tuple[AppSlot, str], clock: FakeClock
) -> None:
    slot, url = server
    alimiter, limiter = limiter_pair(SPLIT_ONLY, "memory://", clock)
    who = quota.Principal(account="acct-stand-in", plan="p", key="sk-io")
    slot.app = quota.QuotaMiddleware(
        StandInUpstream(), limiter=alimiter, resolve={"sk-io": who}.get
    )
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-io", max_retries=0)
    stream = client.responses.create(model="m", input="one two", max_output_tokens=100, stream=True)
    events = list(stream)
    final = events[-1].response.usage  # type: ignore[union-attr]
    assert final is not None and final.output_tokens == 12  # the intro's ten words and two
    remaining = {s.name: s.remaining for s in limiter.peek(who)}
    assert remaining == {"ipd": 10000 - final.input_tokens, "opd": 2000 - 12}


def test_an_unreadable_reply_keeps_both_estimates(
    server: tuple[AppSlot, str], clock: FakeClock
) -> None:
    async def text_app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"no usage here"})

    slot, url = server
    alimiter, limiter = limiter_pair(SPLIT_ONLY, "memory://", clock)
    who = quota.Principal(account="acct-text", plan="p", key="sk-io")
    slot.app = quota.QuotaMiddleware(text_app, limiter=alimiter, resolve={"sk-io": who}.get)
    body = {"model": "m", "messages": HI, "max_tokens": 300}
    auth = {"Authorization": "Bearer sk-io"}
    reply = httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth, timeout=10)
    assert reply.status_code == 200 and reply.text == "no usage here"
    remaining = {s.name: s.remaining for s in limiter.peek(who)}
    assert remaining == {"ipd": 10000 - estimate_prompt_tokens(body), "opd": 2000 - 300}


# -- the classifier's cost, the reader's counts ---------------------------------------------


def test_the_classifier_charges_each_meter_the_catalog_names() -> None:
    body = {"model": "m", "messages": HI, "max_tokens": 100, "n": 2}
    prompt = estimate_prompt_tokens(body)
    split = OpenAIProfile().bind(SPLIT_ONLY)
    assert split.classify("chat", body).cost == {"input_tokens": prompt, "output_tokens": 200}
    assert split.classify("embeddings", {"input": "x"}).cost == {
        "input_tokens": estimate_prompt_tokens({"input": "x"})
    }
    assert split.classify("web_extract", {"url": "https://example.com"}).cost == {}
    both = OpenAIProfile().bind(CATALOG).classify("chat", body).cost
    assert both == {
        "requests": 1,
        "tokens": prompt + 200,
        "input_tokens": prompt,
        "output_tokens": 200,
    }
    zylo = OpenAIProfile().bind(quota.Catalog.load("zylo")).classify("chat", body).cost
    assert zylo == {"requests": 1, "tokens": prompt + 200}  # no split meters: as before


def test_the_reader_counts_anthropic_streams_and_partial_usage() -> None:
    reader = UsageReader(b"text/event-stream")
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 9, "output_tokens": 1}}}
    cached = {"input_tokens": 9, "cache_read_input_tokens": 90, "cache_creation_input_tokens": 1}
    reader.feed(b"event: message_start\n" + sse(start))
    reader.feed(sse({"type": "message_delta", "usage": {**cached, "output_tokens": 30}}))
    reader.feed(sse({"type": "message_stop"}))
    assert reader.complete and reader.tokens(5) == (100, 30)
    only_output = UsageReader(b"application/json")
    only_output.feed(b'{"usage": {"completion_tokens": 7}}')
    only_output.finish()
    assert only_output.tokens(40) == (40, 7)  # the input unknown: its estimate stands
