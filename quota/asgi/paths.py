"""The path the app will see, normalised once so that the middleware classifies exactly it.

Servers hand ASGI apps ``path`` percent-decoded and ``raw_path`` as sent. Routers match on
``path``; proxies that forward ``raw_path`` (httpx, say) resolve ``..`` themselves. A path
like ``/v1/models/../chat/completions`` (or ``%2e%2e``) would otherwise be priced as one
route and served as another. So the middleware resolves dot segments, collapses repeated
slashes and decodes escaped unreserved characters (RFC 3986 6.2.2), then hands the app the
result as both ``path`` and ``raw_path``. What cannot be made unambiguous is refused: a
segment that decodes to ``/``, ``\\`` or NUL, a raw ``\\``, bytes that are not UTF-8, and
``..`` climbing above the root.
"""

from __future__ import annotations

from urllib.parse import quote, unquote_to_bytes

from .responses import ApiError, bad_request
from .types import Scope

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
#: characters kept as they are in a raw path segment (RFC 3986 pchar minus '%')
_SAFE = "!$&'()*+,;=:@-._~"
#: a path made only of these, with no dot segment or empty one, is already normal
_PLAIN = bytes(_UNRESERVED) + b"/!$&'()*+,;=:@"
#: raw paths found normal, with their path (bounded: cleared when full)
_KNOWN: dict[bytes, str] = {}


def _refuse(why: str) -> ApiError:
    return bad_request(f"invalid request path: {why}", "invalid_path")


def _segment(raw: bytes) -> tuple[str, str]:
    """One raw segment -> (decoded text, canonical raw text); ApiError when ambiguous."""
    if b"\\" in raw:
        raise _refuse("a backslash is not allowed")
    data = unquote_to_bytes(raw) if b"%" in raw else raw
    if b"/" in data or b"\\" in data or b"\x00" in data:
        raise _refuse("an encoded '/', '\\' or NUL is not allowed")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse("it is not UTF-8") from None
    if b"%" not in raw and all(b in _UNRESERVED for b in raw):
        return text, text
    return text, quote(data, safe=_SAFE)


def normalise(raw: bytes) -> tuple[str, str]:
    """(path, raw path) of a raw request path: dot segments resolved, slashes collapsed,
    unreserved escapes decoded; ApiError (400 ``invalid_path``) when it cannot be."""
    if not raw.startswith(b"/"):
        raise _refuse("it must start with '/'")
    if not raw.translate(None, _PLAIN) and b"//" not in raw and b"/." not in raw:
        text = raw.decode("ascii")  # the common case: nothing to decode or resolve
        return text, text
    decoded: list[str] = []
    encoded: list[str] = []
    trailing = False
    for piece in raw.split(b"/")[1:]:
        trailing = True
        if not piece:
            continue
        text, canon = _segment(piece)
        if text == "..":
            if not decoded:
                raise _refuse("'..' climbs above the root")
            decoded.pop()
            encoded.pop()
        elif text != ".":
            decoded.append(text)
            encoded.append(canon)
            trailing = False
    end = "/" if trailing and decoded else ""
    return "/" + "/".join(decoded) + end, "/" + "/".join(encoded) + end


def normalised_scope(scope: Scope) -> Scope:
    """``scope`` with its ``path`` and ``raw_path`` normalised (the app sees these); ApiError
    when the path is refused. Works from ``raw_path`` when the server gives one."""
    raw = scope.get("raw_path")
    if raw.__class__ is bytes and _KNOWN.get(raw) == scope.get("path"):
        return scope  # a path seen before, already normal
    if raw is None:
        path = scope.get("path") or "/"
        raw = quote(path, safe="/" + _SAFE).encode("ascii")
    elif b"?" in raw:  # some servers leave the query on raw_path
        raw = raw.split(b"?", 1)[0]
    path, raw_path = normalise(bytes(raw))
    if path == scope.get("path") and raw_path.encode("ascii") == raw:
        if len(_KNOWN) >= 1024:
            _KNOWN.clear()
        _KNOWN[raw] = path
        return scope
    return {**scope, "path": path, "raw_path": raw_path.encode("ascii")}


def is_preflight(scope: Scope) -> bool:
    """A real CORS preflight: ``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``
    and no body (no Transfer-Encoding, no Content-Length but 0). Only these pass without a key."""
    if scope["method"] != "OPTIONS":
        return False
    names = {name: value for name, value in scope.get("headers") or []}
    return (
        b"origin" in names
        and b"access-control-request-method" in names
        and b"transfer-encoding" not in names
        and names.get(b"content-length", b"0").strip() == b"0"
    )


def app_path(scope: Scope) -> str:
    """The path within the app: ``path`` without the ``root_path`` it is mounted under."""
    path: str = scope.get("path") or "/"
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path
