"""``QuotaMiddleware``: the catalog enforced on an ASGI app's HTTP traffic, streams included.

Per request: normalise the path the app will see (``paths``), check the route's methods,
identify the key, resolve the principal (cached), read the body and price it with the profile
(the body decides, on every route), one ``acquire``; a denial is answered here
(400/401/402/403/404/405/413/415/429/503 in the OpenAI error shape), an admission goes to the
app with the body replayed unchanged. The wrapped ``send`` adds the rate-limit headers to
``http.response.start``, reads ``usage`` from the body as it passes, and settles (or releases)
before the final body message goes out (on SSE, before ``[DONE]`` or the final event), so a
client's next request already sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..backends.memory import MemoryBackend
from ..catalog import Principal
from ..decision import Decision
from ..errors import QuotaError
from ..limiter import AsyncLimiter, Limiter
from .body import DEFAULT_MAX_BODY, ClientGone, content_length, parse_body, read_body, replay
from .identity import KeyCache, Resolver, extract_key, unknown_key
from .paths import is_preflight, normalised_scope
from .profile import Call, Kind, OpenAIProfile
from .responses import ApiError, send_error, send_json, unavailable
from .settle import Settlement
from .types import ASGIApp, Message, Receive, Scope, Send
from .views import serve_view, view_paths

log = logging.getLogger("quota.asgi")


@dataclass(frozen=True, slots=True)
class QuotaInfo:
    """What the middleware decided, for the app: ``scope["quota"]``."""

    principal: Principal
    call: Call
    decision: Decision | None


class QuotaMiddleware:
    """Enforce ``limiter``'s catalog on ``app`` (pure ASGI: any server, Starlette, FastAPI).

    ``limiter``: a ``quota.AsyncLimiter`` (preferred) or a ``quota.Limiter``; a sync limiter is
    called inline on the memory engine and through ``asyncio.to_thread`` on any other
    (``offload`` overrides). ``resolve(key)``: sync or async, returns a ``Principal`` or None;
    cached ``key_ttl`` seconds (unknown keys ``negative_key_ttl``) on ``key_clock`` (default
    ``time.monotonic``). ``public_paths``: exact (normalised) paths that pass without a key
    and uncharged (health checks). Real CORS preflights pass without a key and without a
    body; lifespan passes untouched; websockets are refused (HTTP 403) unless
    ``websockets="pass"`` or on a public path, since nothing on them is priced.
    ``views=True`` answers ``GET /stats`` and ``GET /validate`` here (``quota.views``; a
    mapping ``{path: "stats" | "validate"}`` picks the paths), charging nothing.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: AsyncLimiter | Limiter,
        resolve: Resolver,
        profile: Literal["openai"] | OpenAIProfile = "openai",
        max_body: int = DEFAULT_MAX_BODY,
        key_ttl: float = 60.0,
        negative_key_ttl: float = 5.0,
        key_cache_size: int = 10_000,
        public_paths: Iterable[str] = (),
        offload: bool | None = None,
        key_clock: Callable[[], float] | None = None,
        views: bool | Mapping[str, str] = False,
        websockets: Literal["refuse", "pass"] = "refuse",
    ) -> None:
        if isinstance(profile, str):
            if profile != "openai":
                raise ValueError(f"unknown profile {profile!r}; known: 'openai'")
            profile = OpenAIProfile()
        if max_body < 0:
            raise ValueError(f"max_body must not be negative, got {max_body}")
        self.app = app
        self.limiter = limiter
        self.catalog = limiter.catalog
        self.classifier = profile.bind(self.catalog)
        self.max_body = max_body
        extra: dict[str, Any] = {} if key_clock is None else {"clock": key_clock}
        self.keys = KeyCache(
            resolve, ttl=key_ttl, negative_ttl=negative_key_ttl, max_size=key_cache_size, **extra
        )
        self.public_paths = frozenset(public_paths)
        self.views = view_paths(views)
        if offload is None:
            offload = isinstance(limiter, Limiter) and not isinstance(
                limiter.backend, MemoryBackend
            )
        self.offload = offload
        if websockets not in ("refuse", "pass"):
            raise ValueError(f"websockets must be 'refuse' or 'pass', got {websockets!r}")
        self.websockets = websockets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket" and not self._lets_through(scope):
                await receive()  # websocket.connect; closing before accept is an HTTP 403
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        try:
            scope = normalised_scope(scope)
            if is_preflight(scope):  # CORS: the app's own CORS layer answers, with no body
                await self.app(scope, replay(b"", receive), send)
                return
            path = _path(scope)
            if path in self.public_paths:
                await self.app(scope, receive, send)
                return
            method = scope["method"]
            view = self.views.get(path.rstrip("/") or "/") if self.views else None
            if view is not None and method in ("GET", "HEAD"):
                await serve_view(self, view, scope, send)
                return
            kind = self.classifier.route(method, path)
            who, call, receive = await self._admit(scope, receive, kind)
        except ApiError as error:
            await send_error(send, error)
            return
        except ClientGone:
            return
        if not call.cost and call.model is None and not call.features:
            await self._free(scope, receive, send, who, call)
            return
        decision = await self._decide(send, who, call)
        if decision is None:
            return
        scope = {**scope, "quota": QuotaInfo(who, call, decision)}
        settlement = Settlement(self, who, call, decision)
        try:
            await self.app(scope, settlement.wrap_receive(receive), settlement.wrap_send(send))
        except BaseException:
            await settlement.failed()
            raise
        await settlement.done()

    def _lets_through(self, scope: Scope) -> bool:
        """Whether a websocket may reach the app: none is priced, so only where the operator
        said so (``websockets="pass"``, or a public path)."""
        if self.websockets == "pass":
            return True
        try:
            return _path(normalised_scope(scope)) in self.public_paths
        except ApiError:
            return False

    async def _decide(self, send: Send, who: Principal, call: Call) -> Decision | None:
        """One acquire; a denial (or a store failure) is answered here and gives None."""
        try:
            decision: Decision = await self._run(
                self.limiter.acquire, who, call.cost, model=call.model, features=call.features
            )
        except QuotaError:
            log.exception("quota: acquire failed for account %r", who.account)
            await send_error(
                send, unavailable("the quota service is unavailable", "quota_unavailable")
            )
            return None
        if decision.allowed:
            return decision
        headers = decision.headers()
        if not decision.states:  # an entitlement denial: show the account's state anyway
            headers = {**await self._peek_headers(who), **headers}
        if decision.retry_after is None or decision.status in (402, 403):
            headers["x-should-retry"] = "false"  # the OpenAI SDKs would retry twice for nothing
        await send_json(send, decision.status, decision.error_body(), headers)
        return None

    async def _admit(
        self, scope: Scope, receive: Receive, kind: Kind
    ) -> tuple[Principal, Call, Receive]:
        """Key, principal and call of a request; ApiError for anything it must refuse."""
        headers = scope.get("headers") or []
        key = extract_key(headers)
        try:
            who = await self.keys.lookup(key)
        except Exception:
            log.exception("quota: the key resolver failed")
            raise unavailable("cannot check the API key right now", "auth_unavailable") from None
        if who is None:
            raise unknown_key()
        if who.plan not in self.catalog.plans:
            log.error(
                "quota: account %r is on plan %r, unknown to the catalog", who.account, who.plan
            )
            raise unavailable("this account's plan is not configured", "plan_unavailable")
        body = await read_body(receive, self.max_body, content_length(headers))
        parsed = parse_body(kind, headers, body)
        if parsed is None:
            return who, self.classifier.empty(kind), replay(body, receive)
        call = self.classifier.classify(
            kind, parsed.fields, parsed.media, parsed.opaque, _path(scope)
        )
        return who, call, replay(body, receive)

    async def _peek_headers(self, who: Principal) -> dict[str, str]:
        """The account's current state as response headers (charges nothing)."""
        try:
            states = await self._run(self.limiter.peek, who)
        except QuotaError:
            log.exception("quota: peek failed for account %r", who.account)
            return {}
        return Decision(
            allowed=True,
            status=200,
            principal=who,
            now=self.limiter.clock(),
            states=tuple(states),
            header_config=self.catalog.headers,
        ).headers()

    async def _free(
        self, scope: Scope, receive: Receive, send: Send, who: Principal, call: Call
    ) -> None:
        """An uncharged request: the app answers, with the account's current state as headers."""
        headers = await self._peek_headers(who)
        scope = {**scope, "quota": QuotaInfo(who, call, None)}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = with_headers(message, headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _run(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a limiter method: awaited (async), inline or in a thread (sync)."""
        if isinstance(self.limiter, AsyncLimiter):
            return await method(*args, **kwargs)
        if self.offload:
            import asyncio  # only here: importing asyncio costs the core import ~20 ms

            return await asyncio.to_thread(method, *args, **kwargs)
        return method(*args, **kwargs)


def with_headers(message: Message, headers: dict[str, str]) -> Message:
    """``http.response.start`` with ``headers`` set (replacing the app's of the same names)."""
    if not headers:
        return message
    names = {name.lower().encode("latin-1") for name in headers}
    raw = [(k, v) for k, v in message.get("headers", ()) if bytes(k).lower() not in names]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return {**message, "headers": raw}


def _path(scope: Scope) -> str:
    path: str = scope.get("path") or "/"
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path
