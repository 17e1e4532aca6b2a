"""Who is calling: the API key from the request headers, and a TTL cache over the resolver."""

from __future__ import annotations

import inspect
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from ..catalog import Principal
from .responses import ApiError, unauthorized
from .types import RawHeaders, header

#: ``resolve(key)``: the principal an API key belongs to, or None for an unknown key.
Resolver = Callable[[str], "Principal | Awaitable[Principal | None] | None"]

MAX_KEY_LENGTH = 1024
_MISSING = (
    "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
)


def _token(raw: bytes, what: str) -> str:
    """``raw`` as a key: visible ASCII only (no spaces), 1 to ``MAX_KEY_LENGTH`` characters."""
    if not raw or len(raw) > MAX_KEY_LENGTH or any(b < 0x21 or b > 0x7E for b in raw):
        raise unauthorized(
            f"malformed {what}: the key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters",
            "invalid_authorization_header",
        )
    return raw.decode("ascii")


def extract_key(headers: RawHeaders) -> str:
    """The API key of a request: ``Authorization: Bearer <key>``, else ``X-API-Key: <key>``.

    A missing key, a repeated header, another auth scheme or a key with spaces, control or
    non-ASCII bytes is an ApiError (401), never a crash.
    """
    auth = header(headers, b"authorization")
    if len(auth) > 1:
        raise unauthorized("more than one Authorization header", "invalid_authorization_header")
    if auth:
        scheme, _, token = auth[0].strip(b" \t").partition(b" ")
        if scheme.lower() != b"bearer":
            raise unauthorized(
                "malformed Authorization header: expected 'Bearer <key>'",
                "invalid_authorization_header",
            )
        return _token(token.strip(b" \t"), "Authorization header")
    api_key = header(headers, b"x-api-key")
    if len(api_key) > 1:
        raise unauthorized("more than one X-API-Key header", "invalid_authorization_header")
    if api_key:
        return _token(api_key[0].strip(b" \t"), "X-API-Key header")
    raise unauthorized(_MISSING, "missing_api_key")


class KeyCache:
    """Caches ``resolve(key)`` (sync or async): hits for ``ttl`` seconds, unknown keys (None)
    for ``negative_ttl`` seconds, at most ``max_size`` keys (least recently used go first).

    A resolver's exception is not cached: it propagates (the middleware answers 503). A
    principal without a ``key`` gets the presented key, which per-key limits need. A sync
    resolver runs on the event loop: keep it fast (a dict, a local file) or make it async.
    """

    def __init__(
        self,
        resolve: Resolver,
        *,
        ttl: float = 60.0,
        negative_ttl: float = 5.0,
        max_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl < 0 or negative_ttl < 0 or max_size < 0:
            raise ValueError("ttl, negative_ttl and max_size must not be negative")
        self.resolve = resolve
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_size = max_size
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()

    async def lookup(self, key: str) -> Principal | None:
        """The principal of ``key`` (cached), or None when the resolver does not know it."""
        now = self.clock()
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] > now:
                self._entries.move_to_end(key)
                return entry[1]
            del self._entries[key]
        result = self.resolve(key)
        if inspect.isawaitable(result):
            result = await result
        if result is not None and not isinstance(result, Principal):
            raise TypeError(f"resolve(key) must return a quota.Principal or None, got {result!r}")
        if result is not None and result.key is None:
            result = result.model_copy(update={"key": key})
        ttl = self.ttl if result is not None else self.negative_ttl
        if ttl > 0 and self.max_size > 0:
            self._entries[key] = (self.clock() + ttl, result)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)
        return result

    def invalidate(self, key: str | None = None) -> None:
        """Forget one key (revoked, plan changed), or every key."""
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


def unknown_key() -> ApiError:
    return unauthorized("Incorrect API key provided.", "invalid_api_key")
