"""The ASGI 3 callables, typed loosely enough for any server and framework."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Raw header pairs as the ASGI scope carries them (lower-cased names, bytes).
RawHeaders = list[tuple[bytes, bytes]]


def header(headers: RawHeaders, name: bytes) -> list[bytes]:
    """Every value of header ``name`` (lower-case bytes), in order."""
    return [value for key, value in headers if key == name]
