"""A stand-in for an LLM provider, for ``quota serve`` and the tests: a tiny pure-ASGI app.

It answers the OpenAI-compatible endpoints with deterministic text and real ``usage``:
``/v1/chat/completions`` and ``/v1/completions`` (JSON, or SSE with ``"stream": true``; the
usage chunk only with ``stream_options.include_usage``, as OpenAI does), ``/generate``,
``/v1/web-extract``, ``/v1/images/generations``, ``/v1/models``, ``/stats``, ``/validate``.
Completion tokens are the words of the reply (cut at ``max_tokens``); prompt tokens are the
profile's estimate. A request header ``X-Upstream-Status: 503`` makes it fail with that status,
to try success-only counting.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

from .profile import estimate_prompt_tokens
from .responses import send_json
from .types import Receive, Scope, Send, header

DEFAULT_MODELS = ("gpt-5.5", "claude-opus-4.8", "gemini-3.1-pro-preview", "llama-3.1-8b")
_INTRO = ("This", "is", "the", "stand-in", "upstream", "of", "quota", "serve.", "You", "said:")
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def reply_words(body: dict[str, Any]) -> list[str]:
    """The stand-in's reply to ``body``, as words: fixed text quoting the last user input."""
    said = ""
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                said = message["content"]
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        said = prompt
    return [*_INTRO, *(said.split()[:50] or ["nothing"])]


def _limit(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


class StandInUpstream:
    """The stand-in provider; ``models`` is what ``/v1/models`` lists."""

    def __init__(self, models: Sequence[str] = DEFAULT_MODELS) -> None:
        self.models = list(models)
        self.served = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        self.served += 1
        path = scope["path"].rstrip("/")
        path = path[3:] if path.startswith("/v1/") else path
        status = header(scope.get("headers") or [], b"x-upstream-status")
        if status and status[0].isdigit() and 400 <= int(status[0]) <= 599:
            await _error(
                send, int(status[0]), "the stand-in upstream failed as asked", "upstream_error"
            )
            return
        if scope["method"] == "GET" or path in ("/stats", "/validate"):
            await self._get(scope, send, path)
            return
        raw = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            raw += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            await _error(send, 400, "the body must be a JSON object", "invalid_request_body")
            return
        if path in ("/chat/completions", "/completions", "/generate"):
            await self._complete(send, path, body)
        elif path == "/web-extract":
            url = body.get("url")
            page = f"Stand-in content of {url}." if isinstance(url, str) else "Stand-in content."
            await send_json(send, 200, {"url": url, "title": "Stand-in page", "content": page})
        elif path == "/images/generations":
            n = body["n"] if isinstance(body.get("n"), int) else 1
            data = [{"url": f"https://images.invalid/{i}.png"} for i in range(n)]
            await send_json(send, 200, {"created": int(time.time()), "data": data})
        else:
            await _error(send, 404, f"no such endpoint: POST {scope['path']}", "not_found")

    async def _get(self, scope: Scope, send: Send, path: str) -> None:
        info = scope.get("quota")
        who = getattr(info, "principal", None)
        account = {"account": who.account, "plan": who.plan} if who is not None else {}
        if path == "/models":
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "stand-in"}
                for m in self.models
            ]
            await send_json(send, 200, {"object": "list", "data": data})
        elif path == "/validate":
            await send_json(send, 200, {"valid": True, **account})
        elif path == "/stats":
            await send_json(send, 200, {"requests_served": self.served, **account})
        else:
            await _error(send, 404, f"no such endpoint: GET {scope['path']}", "not_found")

    async def _complete(self, send: Send, path: str, body: dict[str, Any]) -> None:
        words = reply_words(body)
        limit = _limit(body)
        finish = "stop"
        if limit is not None and len(words) > limit:
            words, finish = words[:limit], "length"
        usage = {
            "prompt_tokens": estimate_prompt_tokens(body),
            "completion_tokens": len(words),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        model = body.get("model") if isinstance(body.get("model"), str) else "stand-in"
        chat = path == "/chat/completions"
        base = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        if body.get("stream") is not True:
            text = " ".join(words)
            choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            await send_json(send, 200, {**base, "choices": [choice], "usage": usage})
            return
        await send({"type": "http.response.start", "status": 200, "headers": _SSE})
        base["object"] = "chat.completion.chunk" if chat else "text_completion"
        for i, word in enumerate(words):
            piece = word if i == len(words) - 1 else word + " "
            delta: dict[str, Any] = {"index": 0, "finish_reason": None}
            if chat:
                delta["delta"] = {"content": piece, **({"role": "assistant"} if i == 0 else {})}
            else:
                delta["text"] = piece
            await _event(send, {**base, "choices": [delta]})
        last: dict[str, Any] = {"index": 0, "finish_reason": finish}
        last["delta" if chat else "text"] = {} if chat else ""
        await _event(send, {**base, "choices": [last]})
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            await _event(send, {**base, "choices": [], "usage": usage})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _event(send: Send, data: dict[str, Any]) -> None:
    chunk = b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _error(send: Send, status: int, message: str, code: str) -> None:
    error = {"message": message, "type": "upstream_error", "param": None, "code": code}
    await send_json(send, status, {"error": error})
