"""The same gateway under Starlette and FastAPI: ``app.add_middleware(QuotaMiddleware, ...)``
and wrapping, served by uvicorn and called with the OpenAI SDK."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import fastapi
import openai
import pydantic
import pytest
from conftest import FakeClock, storage_url
from http_servers import BACKENDS, AppSlot, limiter_pair
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import quota
from quota.asgi import estimate_prompt_tokens

HI = [{"role": "user", "content": "hello from a framework"}]


def completion(body: dict[str, Any]) -> Response:
    """A chat completion with usage: JSON, or SSE ending with a usage chunk."""
    words = ["Framework", "reply", "to", str(len(body["messages"])), "messages"]
    usage = {"prompt_tokens": 7, "completion_tokens": len(words), "total_tokens": 7 + len(words)}
    base = {"id": "c1", "created": 0, "model": body["model"]}
    if not body.get("stream"):
        message = {"role": "assistant", "content": " ".join(words)}
        choice = {"index": 0, "finish_reason": "stop", "message": message}
        return JSONResponse(
            {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
        )

    async def events() -> AsyncIterator[bytes]:
        for word in words:
            chunk = {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}],
            }
            yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
        last = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
        yield b"data: " + json.dumps(last).encode() + b"\n\ndata: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def starlette_app() -> Starlette:
    async def chat(request: Request) -> Response:
        return completion(await request.json())  # the replayed body

    async def models(request: Request) -> Response:
        who = request.scope["quota"].principal
        return JSONResponse({"object": "list", "data": [], "plan": who.plan})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models),
        ]
    )


class ChatBody(pydantic.BaseModel):
    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    max_tokens: int | None = None


def fastapi_app() -> fastapi.FastAPI:
    app = fastapi.FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(body: ChatBody) -> Response:
        return completion(body.model_dump())

    @app.get("/v1/models")
    async def models(request: fastapi.Request) -> dict[str, Any]:
        return {"object": "list", "data": [], "plan": request.scope["quota"].principal.plan}

    return app


Build = Callable[[Any, dict[str, Any]], Any]


def added(make: Callable[[], Any]) -> Build:
    def build(limiter: Any, kwargs: dict[str, Any]) -> Any:
        app = make()
        app.add_middleware(quota.QuotaMiddleware, limiter=limiter, **kwargs)
        return app

    return build


def wrapped(make: Callable[[], Any]) -> Build:
    return lambda limiter, kwargs: quota.QuotaMiddleware(make(), limiter=limiter, **kwargs)


STYLES = {
    "starlette-add_middleware": added(starlette_app),
    "starlette-wrapped": wrapped(starlette_app),
    "fastapi-add_middleware": added(fastapi_app),
    "fastapi-wrapped": wrapped(fastapi_app),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("style", list(STYLES))
def test_framework(
    request: pytest.FixtureRequest,
    style: str,
    backend: str,
    server: tuple[AppSlot, str],
    clock: FakeClock,
) -> None:
    slot, url = server
    storage = storage_url(request, backend)
    alimiter, limiter = limiter_pair(quota.Catalog.load("zylo"), storage, clock)
    who = quota.Principal(account=f"fw-{uuid.uuid4().hex[:8]}", plan="basic", key="sk-fw")
    slot.app = STYLES[style](alimiter, {"resolve": {"sk-fw": who}.get})
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-fw", max_retries=0)

    raw = client.chat.completions.with_raw_response.create(
        model="llama-3.1-8b", messages=HI, max_tokens=100
    )
    assert raw.parse().usage.total_tokens == 12
    assert raw.headers["x-ratelimit-remaining-tokens"] == str(
        200_000
        - estimate_prompt_tokens({"model": "llama-3.1-8b", "messages": HI, "max_tokens": 100})
        - 100
    )
    assert {s.name: s.remaining for s in limiter.peek(who)}["tpd"] == 200_000 - 12

    with client.chat.completions.with_streaming_response.create(
        model="llama-3.1-8b", messages=HI, max_tokens=100, stream=True
    ) as response:
        assert response.headers["x-ratelimit-remaining-requests"] == "8"
        chunks = list(response.parse())
    assert chunks[-1].usage is not None
    assert {s.name: s.remaining for s in limiter.peek(who)}["tpd"] == 200_000 - 24

    models = client.models.with_raw_response.list()
    assert models.headers["x-ratelimit-remaining-requests"] == "8"  # free, with headers
    assert json.loads(models.content)["plan"] == "basic"

    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(
            model="llama-3.1-8b",
            messages=HI,
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        )
    for _ in range(8):
        client.chat.completions.create(model="llama-3.1-8b", messages=HI, max_tokens=5)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="llama-3.1-8b", messages=HI, max_tokens=5)
    assert info.value.response.headers["retry-after"] == "60"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="sk-other", max_retries=0).models.list()
