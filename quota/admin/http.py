"""The few pieces of HTTP the admin app needs, over bare ASGI: a parsed request (route path,
query, headers, a capped body) and whole responses (JSON, CSV, HTML, redirects, errors).

Errors answer ``{"error": {"message", "type", "param", "code"}}``, the shape of the
middleware's own answers (``quota.asgi.responses``), so one client reads both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from ..asgi.responses import ApiError
from ..asgi.types import Receive, Scope, Send

#: A request body larger than this is refused (413): admin bodies are a few fields.
MAX_BODY = 64 * 1024


class HttpError(ApiError):
    """An answer the admin app gives instead of the route's own: 400, 401, 404, 405, 413,
    422 or 503, with a machine-readable ``code``; the middleware's ``ApiError`` with the
    admin's error types (401 is an ``authentication_error``)."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        *,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        if status == 401:
            kind = "authentication_error"
        super().__init__(status, message, code, param=param, type=kind, headers=headers)


class Request:
    """One HTTP request to the admin app: ``path`` is relative to where it is mounted."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope.get("method", "GET")
        root = scope.get("root_path", "") or ""
        path: str = scope.get("path", "/") or "/"
        if root and path.startswith(root):  # Starlette's Mount keeps the full path
            path = path[len(root) :] or "/"
        self.root: str = root
        self.path = path
        raw_query = scope.get("query_string", b"").decode("latin-1")
        self.query: list[tuple[str, str]] = parse_qsl(raw_query, keep_blank_values=True)
        self.headers: dict[str, str] = {}
        for name, value in scope.get("headers") or []:
            self.headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        client = scope.get("client")
        self.client = f"{client[0]}:{client[1]}" if client else "unknown"

    def arg(self, name: str) -> str | None:
        """The first value of query parameter ``name``."""
        return next((v for k, v in self.query if k == name), None)

    def args(self, name: str) -> list[str]:
        return [v for k, v in self.query if k == name]

    async def body(self) -> bytes:
        """The whole body, at most ``MAX_BODY`` bytes (413 beyond)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                raise HttpError(413, f"the body is over {MAX_BODY} bytes", "body_too_large")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; an empty body is ``{}``. 400 for anything else."""
        raw = await self.body()
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise HttpError(400, "the body is not valid JSON", "invalid_json") from None
        if not isinstance(data, dict):
            raise HttpError(400, "the body must be a JSON object", "invalid_request_body")
        return data


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Send a whole response in one body message; never cached (the numbers move)."""
    raw = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
    ]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, payload: object, headers: Mapping[str, str] | None = None
) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    await send_bytes(send, status, body, "application/json", headers)


async def send_error(send: Send, error: HttpError) -> None:
    await send_json(send, error.status, error.body(), error.headers)


async def redirect(send: Send, location: str, headers: Mapping[str, str] | None = None) -> None:
    """A 303 to ``location`` (after a login by ``?token=``: the token leaves the address bar)."""
    await send_bytes(
        send, 303, b"", "text/plain; charset=utf-8", {"Location": location, **(headers or {})}
    )
