"""Reading a request body under a size cap, and replaying it unchanged to the app."""

from __future__ import annotations

from .responses import ApiError, bad_request
from .types import Message, RawHeaders, Receive, header

DEFAULT_MAX_BODY = 32 * 1024 * 1024


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


def too_large(cap: int) -> ApiError:
    return ApiError(
        413,
        f"request body too large: the limit is {cap:,} bytes",
        "request_too_large",
    )


def content_length(headers: RawHeaders) -> int | None:
    """The announced Content-Length; None when absent (chunked); 400 when malformed.

    Repeated headers must agree (RFC 9110 8.6); a sign, spaces inside or non-digits are errors.
    """
    values = header(headers, b"content-length")
    if not values:
        return None
    parts = {p.strip(b" \t") for v in values for p in v.split(b",")}
    if len(parts) != 1:
        raise bad_request("conflicting Content-Length headers", "invalid_content_length")
    (text,) = parts
    if not text.isdigit() or len(text) > 18:
        raise bad_request("malformed Content-Length header", "invalid_content_length")
    return int(text)


def check_json_type(headers: RawHeaders) -> None:
    """415 unless Content-Type is absent (curl without -H), ``application/json`` or ``*+json``."""
    values = header(headers, b"content-type")
    if not values:
        return
    if len(values) > 1:
        raise ApiError(415, "more than one Content-Type header", "unsupported_media_type")
    media = values[0].split(b";", 1)[0].strip(b" \t").lower()
    if media != b"application/json" and not (
        media.startswith(b"application/") and media.endswith(b"+json")
    ):
        shown = media.decode("latin-1")[:80]
        raise ApiError(
            415,
            f"unsupported Content-Type {shown!r}: send 'application/json'",
            "unsupported_media_type",
        )


async def read_body(receive: Receive, cap: int, announced: int | None) -> bytes:
    """The whole request body, at most ``cap`` bytes (413 beyond, also when announced).

    Works with and without Content-Length (chunked transfer): the cap is checked as the
    chunks arrive, so an endless body costs at most ``cap`` bytes of memory.
    """
    if announced is not None and announced > cap:
        raise too_large(cap)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message.get("type")
        if kind == "http.disconnect":
            raise ClientGone
        if kind != "http.request":
            continue
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > cap:
                raise too_large(cap)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields ``body`` once, as one message, then defers to ``receive``
    (which the server answers with ``http.disconnect`` when the client goes away)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
