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

from ..catalog import Principal
from ..decision import Decision
from ..errors import QuotaError
from ..limiter import AsyncLimiter, Limiter
from .body import DEFAULT_MAX_BODY, ClientGone, content_length, parse_body, read_body, replay
from .gate import Gate
from .identity import KeyCache, Resolver
from .models import model_list, models_target
from .openai import Call, Kind, OpenAIProfile
from .paths import app_path, is_preflight, normalised_scope
from .responses import ApiError, send_error, send_json, unavailable, with_headers
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
    ``models="catalog"`` answers ``GET /v1/models`` and ``/v1/models/{id}`` here with the
    catalog's model ids the caller's plan may call (``quota.asgi.models``; a list of ids adds
    the ones the upstream serves); ``"app"``, the default, lets the app answer.
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
        models: Literal["app", "catalog"] | Iterable[str] = "app",
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
        self.models = model_list(self.catalog, models)
        self.gate = Gate(limiter, self.keys, offload)
        self.offload = self.gate.offload  # whether a sync limiter runs in a worker thread
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
            path = app_path(scope)
            if path in self.public_paths:
                await self.app(scope, receive, send)
                return
            method = scope["method"]
            view = self.views.get(path.rstrip("/") or "/") if self.views else None
            if view is not None and method in ("GET", "HEAD"):
                await serve_view(self.gate, view, scope, send)
                return
            target = models_target(path) if method in ("GET", "HEAD") else None
            if self.models is not None and target is not None:  # models="catalog"
                await self.models.serve(self.gate, target, scope, send)
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
        settlement = Settlement(self.gate, who, call, decision)
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
            return app_path(normalised_scope(scope)) in self.public_paths
        except ApiError:
            return False

    async def _decide(self, send: Send, who: Principal, call: Call) -> Decision | None:
        """One acquire; a denial (or a store failure) is answered here and gives None."""
        try:
            decision: Decision = await self.gate.run(
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
            headers = {**await self.gate.current_headers(who), **headers}
        if decision.retry_after is None or decision.status in (402, 403):
            headers["x-should-retry"] = "false"  # the OpenAI SDKs would retry twice for nothing
        await send_json(send, decision.status, decision.error_body(), headers)
        return None

    async def _admit(
        self, scope: Scope, receive: Receive, kind: Kind
    ) -> tuple[Principal, Call, Receive]:
        """Key, principal and call of a request; ApiError for anything it must refuse."""
        headers = scope.get("headers") or []
        who = await self.gate.principal(headers)
        body = await read_body(receive, self.max_body, content_length(headers))
        parsed = parse_body(kind, headers, body)
        if parsed is None:
            return who, self.classifier.empty(kind), replay(body, receive)
        call = self.classifier.classify(
            kind, parsed.fields, parsed.media, parsed.opaque, app_path(scope)
        )
        return who, call, replay(body, receive)

    async def _free(
        self, scope: Scope, receive: Receive, send: Send, who: Principal, call: Call
    ) -> None:
        """An uncharged request: the app answers, with the account's current state as headers."""
        headers = await self.gate.current_headers(who)
        scope = {**scope, "quota": QuotaInfo(who, call, None)}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = with_headers(message, headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)
