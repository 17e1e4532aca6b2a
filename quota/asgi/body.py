"""Reading a request body under a size cap, replaying it unchanged to the app, and parsing it
by its content type (JSON, forms with uploads, or opaque content) for the classifier."""

from __future__ import annotations

import json
from collections import Counter
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from .content import Media
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


# -- parsing by content type -------------------------------------------------------------------

#: form fields read as integers or flags, as a JSON body would carry them
_FORM_INTEGERS = frozenset(
    {"n", "max_tokens", "max_completion_tokens", "max_new_tokens", "max_output_tokens"}
)
_FORM_FLAGS = frozenset({"stream"})
#: kinds that take multipart or url-encoded forms besides JSON (file uploads)
FORM_KINDS = frozenset({"images", "audio", "other", "free"})
_FILE_KINDS = {"images": "image", "audio": "audio"}


class Parsed(NamedTuple):
    """A request body as the classifier reads it: ``fields`` (a JSON object, or a form's
    fields), media found outside them (uploaded files, an opaque body) and characters of
    content nothing could read (counted as text)."""

    fields: object
    media: Media | None = None
    opaque: int = 0


def media_type(headers: RawHeaders) -> bytes | None:
    """The request's media type (lower case, no parameters); None when absent; 415 when
    Content-Type is repeated."""
    values = header(headers, b"content-type")
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(415, "more than one Content-Type header", "unsupported_media_type")
    return values[0].split(b";", 1)[0].strip(b" \t").lower()


def _is_json(media: bytes | None) -> bool:
    return (
        media is None
        or media == b"application/json"
        or (media.startswith(b"application/") and media.endswith(b"+json"))
    )


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object that names each key once: parsers disagree on which duplicate wins."""
    out = dict(pairs)
    if len(out) != len(pairs):
        names = [k for k, _ in pairs]
        dup = next(k for i, k in enumerate(names) if k in names[:i])
        raise bad_request(f"the key {dup[:60]!r} appears twice in one object", "duplicate_key")
    return out


#: one decoder for every body (``json.loads`` with a hook builds a new one per call)
_DECODER = json.JSONDecoder(object_pairs_hook=_unique)


def _loads(body: bytes) -> object:
    """``json.loads`` of bytes (UTF-8, -16 or -32, as it detects), keys checked unique."""
    return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))


def parse_json(body: bytes) -> object:
    """A JSON document (400 ``invalid_json`` when it is not, or repeats a key)."""
    try:
        return _loads(body)
    except (ValueError, RecursionError) as exc:
        raise bad_request(
            f"the request body is not valid JSON: {exc}"[:200], "invalid_json"
        ) from None


def parse_body(kind: str, headers: RawHeaders, body: bytes) -> Parsed | None:
    """The body of a request on a route of ``kind``; None when there is none to price.

    JSON-only routes take JSON (415 otherwise); upload routes also take forms; unknown routes
    take anything: a body that parses as JSON is JSON whatever its label, else it is opaque
    (text by size, media by its type)."""
    media = media_type(headers)
    encoding = header(headers, b"content-encoding")
    if encoding and any(v.strip().lower() not in (b"", b"identity") for v in encoding):
        # the app might inflate what this reads as opaque bytes: refuse, never misprice
        raise ApiError(415, "compressed request bodies are not accepted", "unsupported_encoding")
    if not body or body.isspace():
        if kind in ("other", "free"):
            return None
        raise bad_request("the request body must be a JSON object", "invalid_request_body")
    loose = kind in ("other", "free")
    if _is_json(media) and not loose:
        return Parsed(parse_json(body))
    if media == b"multipart/form-data" and kind in FORM_KINDS:
        return _multipart(kind, header(headers, b"content-type")[0], body)
    if media == b"application/x-www-form-urlencoded" and kind in FORM_KINDS:
        return Parsed(_form(_urlencoded(body)))
    if not loose:
        raise _unsupported(media or b"")
    try:  # whatever its label: an app may read JSON from any body (request.json())
        return Parsed(_loads(body))
    except (ValueError, RecursionError):
        if _is_json(media) and media is not None:
            raise bad_request("the request body is not valid JSON", "invalid_json") from None
    major = (media or b"text").split(b"/", 1)[0].decode("latin-1")
    found: Media = Counter()
    if major != "text":
        found[major if major in ("image", "audio", "video") else "file"] += 1
    return Parsed({}, found, len(body))


def _unsupported(media: bytes) -> ApiError:
    shown = media.decode("latin-1")[:80]
    return ApiError(
        415,
        f"unsupported Content-Type {shown!r}: send 'application/json'",
        "unsupported_media_type",
    )


def _form(pairs: list[tuple[str, str]]) -> dict[str, object]:
    """Form fields as a JSON body would carry them; 400 when a field repeats."""
    out: dict[str, object] = {}
    for name, text in pairs:
        if name in out:
            raise bad_request(f"the form field {name[:60]!r} appears twice", "duplicate_key")
        value: object = text
        if name in _FORM_INTEGERS and text.strip().isdigit():
            value = int(text)
        elif name in _FORM_FLAGS and text.strip().lower() in ("true", "false"):
            value = text.strip().lower() == "true"
        out[name] = value
    return out


def _urlencoded(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise bad_request("the form body is not valid UTF-8", "invalid_request_body") from None


def _multipart(kind: str, content_type: bytes, body: bytes) -> Parsed:
    """Fields and uploaded files of a multipart/form-data body; 400 when it is malformed."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type + b"\r\n\r\n" + body
    )
    if not message.is_multipart() or message.defects:
        raise bad_request("malformed multipart/form-data body", "invalid_request_body")
    pairs: list[tuple[str, str]] = []
    files: Media = Counter()
    size = 0
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is None and isinstance(name, str) and not part.defects:
            pairs.append((name, data.decode("utf-8", "replace")))
            continue
        major = part.get_content_maintype()
        files[major if major in ("image", "audio", "video") else _FILE_KINDS.get(kind, "file")] += 1
        size += len(data)
    opaque = size if kind in ("other", "free") else 0
    return Parsed(_form(pairs), files, opaque)
