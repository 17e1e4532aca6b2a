"""Error responses in the OpenAI shape: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import json
from collections.abc import Mapping

from .types import Message, Send

_TYPES = {
    401: "invalid_request_error",
    402: "insufficient_quota",
    403: "permission_error",
    429: "rate_limit_error",
    503: "server_error",
}


class ApiError(Exception):
    """An error the middleware answers itself, before the app sees the request.

    ``type`` defaults from the status (``invalid_request_error`` for 4xx, ``server_error`` for
    503); ``headers`` are added to the response (``WWW-Authenticate`` on 401s, say).
    """

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        *,
        param: str | None = None,
        type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _TYPES.get(status, "invalid_request_error")
        self.headers = dict(headers or {})

    def body(self) -> dict[str, dict[str, str | None]]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(message: str, code: str, param: str | None = None) -> ApiError:
    """A 400 ``invalid_request_error``."""
    return ApiError(400, message, code, param=param)


def unauthorized(message: str, code: str) -> ApiError:
    """A 401 with ``WWW-Authenticate: Bearer`` (RFC 6750)."""
    return ApiError(401, message, code, headers={"WWW-Authenticate": 'Bearer realm="api"'})


def unavailable(message: str, code: str) -> ApiError:
    """A 503: the gateway cannot decide right now (resolver or storage failure)."""
    return ApiError(503, message, code, headers={"Retry-After": "1"})


async def send_json(
    send: Send,
    status: int,
    payload: object,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Send a whole JSON response (``application/json``) in one body message."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_error(send: Send, error: ApiError) -> None:
    """Answer ``error`` in the OpenAI shape."""
    await send_json(send, error.status, error.body(), error.headers)


def with_headers(message: Message, headers: Mapping[str, str]) -> Message:
    """``http.response.start`` with ``headers`` set (replacing the app's of the same names)."""
    if not headers:
        return message
    names = {name.lower().encode("latin-1") for name in headers}
    raw = [(k, v) for k, v in message.get("headers", ()) if bytes(k).lower() not in names]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return {**message, "headers": raw}
