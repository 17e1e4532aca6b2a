"""The provider corpus (tests/corpus/*.json): request and response shapes taken from the
providers' public API references (OpenAI chat, completions, Responses and embeddings, Gemini's
OpenAI-compatible and native endpoints, Anthropic's OpenAI SDK layer, vLLM, llama.cpp, Ollama),
each played in-process through ``QuotaMiddleware`` on the Zylo catalog behind a stand-in app
that answers the recorded response. Each case's ``expect`` was derived by hand from the
middleware's boundary contract (issue 12, rules 3-6), not by running the code.

How settlement is observed: Zylo keeps a daily usage history per meter (``[usage]
history_days``), written by the same engine calls as the charges and adjusted by settle and
release, so ``limiter.usage(who, days=1)`` shows what an account was finally charged, on every
plan, including ``enterprise``, which has no token limit to peek at. The enterprise cases
therefore need no custom catalog: tokens settled = the history's ``tokens``, credits settled =
its ``credits``, and the per-key tool budgets (``search``, ``code_execution``) are peeked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import FakeClock
from http_servers import AppSlot, limiter_pair

import quota
from quota.asgi.types import Message, Receive, Scope, Send

ZYLO = quota.Catalog.load("zylo")
CORPUS = Path(__file__).parent / "corpus"
KEY = "sk-corpus"
Case = dict[str, Any]


def load_corpus() -> list[Any]:
    params = []
    for path in sorted(CORPUS.glob("*.json")):
        for case in json.loads(path.read_text(encoding="utf-8")):
            params.append(pytest.param(case, id=f"{path.stem}:{case['name']}"))
    return params


CASES = load_corpus()


def find(name: str) -> Case:
    return next(p.values[0] for p in CASES if p.values[0]["name"] == name)


def premium(case: Case) -> bool:
    model = case["request"].get("model")
    return isinstance(model, str) and ZYLO.tier_of(model) == "premium"


def final_marker(case: Case) -> bytes | None:
    """What the client must not see before settlement: the stream's last event (``data:
    [DONE]`` or ``response.completed``); None for a JSON body (its last body message)."""
    events = case["response"].get("events")
    return events[-1].encode() if events else None


@dataclass
class Run:
    """What one request did: as the client saw it, as the app saw it, and the account."""

    before: dict[str, int]
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    received: list[bytes] = field(default_factory=list)
    admitted: dict[str, int] | None = None  # history when the app got the request
    at_final: dict[str, int] | None = None  # history when the final event reached the client
    final: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)


def replay_app(
    case: Case, run: Run, used: Callable[[], dict[str, int]]
) -> Callable[[Scope, Receive, Send], Any]:
    """An upstream that records the request it got and answers the case's response (SSE: one
    body message per event, then an empty final one)."""
    response = case["response"]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        run.received.append(body)
        run.admitted = used()
        ctype = response["content_type"].encode()
        await send(
            {
                "type": "http.response.start",
                "status": response["status"],
                "headers": [(b"content-type", ctype)],
            }
        )
        if "events" in response:
            for event in response["events"]:
                chunk = f"{event}\n\n".encode()
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            chunk = json.dumps(response["json"]).encode()
            await send({"type": "http.response.body", "body": chunk, "more_body": False})

    return app


async def drive(
    app: Callable[[Scope, Receive, Send], Any],
    case: Case,
    run: Run,
    used: Callable[[], dict[str, int]],
) -> None:
    """One HTTP request as a server would make it; the client's ``send`` notes the account's
    history when the final event (or the last body message) arrives."""
    body = json.dumps(case["request"]).encode()
    finished = asyncio.Event()
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    marker = final_marker(case)

    async def receive() -> Message:
        if pending:
            return pending.pop()
        await finished.wait()  # like a real server: the client stays until the response ends
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            run.status = message["status"]
            run.headers = {
                bytes(k).decode().lower(): bytes(v).decode() for k, v in message["headers"]
            }
        elif message["type"] == "http.response.body":
            run.body += message.get("body", b"")
            last = not message.get("more_body", False)
            seen = marker in run.body if marker is not None else last
            if run.at_final is None and seen:
                run.at_final = used()
            if last:
                finished.set()

    headers = [
        (b"host", b"gateway.test"),
        (b"authorization", f"Bearer {KEY}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": case["method"],
        "scheme": "http",
        "path": case["path"],
        "raw_path": case["path"].encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("gateway.test", 80),
    }
    try:
        await app(scope, receive, send)
    finally:
        finished.set()


def left(limiter: quota.Limiter, who: quota.Principal) -> dict[str, int]:
    return {s.name: s.remaining for s in limiter.peek(who)}


def history(limiter: quota.Limiter, who: quota.Principal) -> Callable[[], dict[str, int]]:
    return lambda: next(iter(limiter.usage(who, days=1).values()))


def play(case: Case, plan: str, clock: FakeClock) -> Run:
    alimiter, limiter = limiter_pair(ZYLO, "memory://", clock)
    who = quota.Principal(account=f"acct-{plan}", plan=plan, key=KEY)
    used = history(limiter, who)
    run = Run(before=left(limiter, who))
    middleware = quota.QuotaMiddleware(
        replay_app(case, run, used), limiter=alimiter, resolve={KEY: who}.get
    )
    asyncio.run(drive(middleware, case, run, used))
    run.final, run.after = used(), left(limiter, who)
    limiter.close()
    return run


def assert_refused(run: Run) -> None:
    assert run.status == 403, run.body
    assert run.received == [], "a refused request must not reach the app"
    assert run.after == run.before
    assert not any(run.final.values()), run.final  # nothing charged, not even a request
    assert run.headers.get("x-should-retry") == "false"
    assert {"message", "type", "param", "code"} <= set(json.loads(run.body)["error"])


@pytest.mark.parametrize("case", CASES)
def test_enterprise_forwards_and_settles_the_reported_usage(case: Case, clock: FakeClock) -> None:
    run = play(case, "enterprise", clock)
    expect = case["expect"]
    assert run.status == 200, run.body
    assert [json.loads(body) for body in run.received] == [case["request"]]
    assert run.admitted is not None and run.admitted["requests"] == 1
    for meter in ("search", "code_execution"):
        assert run.after[meter] == run.before[meter] - expect["native"][meter], meter
    assert run.final["search"] == expect["native"]["search"]
    # Settled before the final event ([DONE], response.completed) or the last JSON body
    # message went out: what the client saw then is what the account is finally charged.
    assert run.at_final == run.final
    if expect["usage"] is None:
        # No usage in the response: the prompt estimate plus the text seen, below the
        # reservation (every such case has an output reserve far above its generated text).
        assert run.final["tokens"] < run.admitted["tokens"]
        return
    prompt, completion = expect["usage"]
    assert run.final["tokens"] == prompt + completion
    model = case["request"].get("model")
    price = ZYLO.price(model, prompt, completion) if isinstance(model, str) else 0
    assert run.final["credits"] == price


@pytest.mark.parametrize("case", CASES)
def test_basic_refuses_features_and_premium_models(case: Case, clock: FakeClock) -> None:
    run = play(case, "basic", clock)
    if case["expect"]["features"] or premium(case):
        assert_refused(run)
    else:
        assert run.status == 200, run.body
        assert len(run.received) == 1


@pytest.mark.parametrize("case", CASES)
def test_go_allows_search_but_not_code_execution(case: Case, clock: FakeClock) -> None:
    run = play(case, "go", clock)
    expect = case["expect"]
    if "code_execution" in expect["features"]:
        assert_refused(run)
        return
    assert run.status == 200, run.body
    assert len(run.received) == 1
    assert run.after["search"] == run.before["search"] - expect["native"]["search"]


# -- over real HTTP --------------------------------------------------------------------------


def test_cumulative_stream_usage_is_charged_at_its_last_value_over_http(
    server: tuple[AppSlot, str], clock: FakeClock
) -> None:
    """uvicorn + the official SDK: a vLLM stream with ``continuous_usage_stats`` carries the
    running usage on every chunk; the account is charged the last (largest) one, and already
    by the time the SDK has read ``[DONE]``."""
    slot, url = server
    case = find("vllm_chat_stream_continuous_usage")
    alimiter, limiter = limiter_pair(ZYLO, "memory://", clock)
    who = quota.Principal(account="acct-http", plan="enterprise", key=KEY)
    used = history(limiter, who)
    run = Run(before=left(limiter, who))
    slot.app = quota.QuotaMiddleware(
        replay_app(case, run, used), limiter=alimiter, resolve={KEY: who}.get
    )
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=10)
    request = case["request"]
    stream = client.chat.completions.create(
        model=request["model"],
        messages=request["messages"],
        stream=True,
        extra_body={"stream_options": request["stream_options"]},
    )
    usages = [chunk.usage for chunk in stream if chunk.usage is not None]
    assert len(usages) > 2  # cumulative: on every chunk
    first, last = usages[0], usages[-1]
    assert first.completion_tokens == 0 and last.completion_tokens > first.completion_tokens
    assert [last.prompt_tokens, last.completion_tokens] == case["expect"]["usage"]
    charged = used()["tokens"]
    assert charged == last.prompt_tokens + last.completion_tokens
    assert charged != first.prompt_tokens + first.completion_tokens
    assert json.loads(run.received[0])["stream_options"]["continuous_usage_stats"] is True
    limiter.close()
