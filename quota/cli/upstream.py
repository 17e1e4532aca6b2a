"""A stand-in for an LLM provider, for ``quota serve`` and the tests: a tiny pure-ASGI app.

It answers the routes of ``quota.asgi.routes`` with their methods only (another method: 405
with ``Allow``; an unknown path: 404), deterministically and with real ``usage`` (the bodies
are built in ``upstream_replies`` and ``upstream_other``): ``/v1/chat/completions``,
``/v1/completions`` and ``/generate`` (JSON, or SSE with ``"stream": true``), ``/v1/responses``
(JSON or SSE events), ``/v1/embeddings``, ``/v1/images/{generations,edits,variations}``,
``/v1/moderations``, ``/v1/web-extract``, and ``GET`` ``/v1/models``, ``/v1/models/<id>``,
``/stats``, ``/validate``. Audio is not served (501). A request header
``X-Upstream-Status: 503`` makes it fail with that status (400 to 599), to try success-only
counting; any other value is 400.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ..asgi.responses import ApiError, bad_request, send_error, send_json
from ..asgi.routes import Kind, allowed_methods, kind_of, route_key
from ..asgi.types import Receive, Scope, Send, header
from . import upstream_other as other
from . import upstream_replies as replies

DEFAULT_MODELS = ("gpt-5.5", "claude-opus-4.8", "gemini-3.1-pro-preview", "llama-3.1-8b")
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
#: Whole JSON answers of the POST routes, by kind (text kinds may stream instead).
_JSON: dict[Kind, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "chat": lambda body: replies.completion(body, chat=True),
    "generate": lambda body: replies.completion(body, chat=False),
    "responses": replies.response,
    "embeddings": other.embeddings,
    "images": other.images,
    "moderations": other.moderations,
    "web_extract": other.web_extract,
}
_STREAMS: dict[Kind, Callable[[dict[str, Any]], list[replies.Event]]] = {
    "chat": lambda body: replies.completion_events(body, chat=True),
    "generate": lambda body: replies.completion_events(body, chat=False),
    "responses": replies.response_events,
}


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
        try:
            await self._serve(scope, receive, send)
        except replies.BadRequest as exc:
            await send_error(send, bad_request(str(exc), "invalid_request_body"))
        except ApiError as error:
            await send_error(send, error)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = asked_status(scope)
        if status is not None:
            error_type = "server_error" if status >= 500 else "upstream_error"
            message = "the stand-in upstream failed as asked"
            raise ApiError(status, message, "upstream_error", type=error_type)
        path, method = scope["path"], scope["method"]
        kind = kind_of(path)
        if kind == "other":
            raise ApiError(404, f"no such endpoint: {method} {path}", "not_found")
        allowed = allowed_methods(kind)
        if method not in allowed:
            message = f"{method} is not allowed on {path}: use {', '.join(allowed)}"
            headers = {"Allow": ", ".join(allowed)}
            raise ApiError(405, message, "method_not_allowed", headers=headers)
        if kind == "free":
            await send_json(send, 200, self._read(scope, route_key(path)))
            return
        if kind in ("audio", "speech"):
            message = "the stand-in upstream does not serve audio"
            raise ApiError(501, message, "not_implemented", type="server_error")
        raw = await _read_body(receive)
        if raw is None:
            return  # the client left
        body = _json_object(raw, lenient=kind == "images")
        if body.get("stream") is True and kind in _STREAMS:
            await _send_events(send, _STREAMS[kind](body), done=kind != "responses")
        else:
            await send_json(send, 200, _JSON[kind](body))

    def _read(self, scope: Scope, key: str) -> dict[str, Any]:
        """The body of a ``GET`` (models, one model, stats, validate)."""
        info = scope.get("quota")
        who = getattr(info, "principal", None)
        account = {"account": who.account, "plan": who.plan} if who is not None else {}
        if key == "/validate":
            return {"valid": True, **account}
        if key == "/stats":
            return {"requests_served": self.served, **account}
        models = [
            {"id": m, "object": "model", "created": 0, "owned_by": "stand-in"} for m in self.models
        ]
        if key == "/models":
            return {"object": "list", "data": models}
        wanted = key.removeprefix("/models/")
        for model in models:
            if model["id"] == wanted:
                return model
        raise ApiError(404, f"no such model: {wanted!r}", "model_not_found", param="model")


def asked_status(scope: Scope) -> int | None:
    """The status ``X-Upstream-Status`` asks for: None without the header; ApiError 400
    (``invalid_upstream_status``) unless it is one value of three digits from 400 to 599."""
    values = header(scope.get("headers") or [], b"x-upstream-status")
    if not values:
        return None
    value = values[0]
    if len(values) == 1 and len(value) == 3 and value.isdigit() and 400 <= int(value) <= 599:
        return int(value)
    raise bad_request(
        "X-Upstream-Status takes one status code from 400 to 599 (three digits)",
        "invalid_upstream_status",
    )


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None when the client disconnects first."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def _json_object(raw: bytes, lenient: bool) -> dict[str, Any]:
    """The body as a JSON object; ``lenient`` (images: edits and variations are multipart
    forms) takes any other body as ``{}``."""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    if lenient:
        return {}
    raise replies.BadRequest("the body must be a JSON object")


async def _send_events(send: Send, events: list[replies.Event], done: bool) -> None:
    """Send ``events`` as server-sent events, then ``data: [DONE]`` when ``done``."""
    await send({"type": "http.response.start", "status": 200, "headers": _SSE})
    for name, data in events:
        line = b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
        if name is not None:
            line = b"event: " + name.encode() + b"\n" + line
        await send({"type": "http.response.body", "body": line, "more_body": True})
    if done:
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
