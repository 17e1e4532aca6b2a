"""Who is calling, and the limiter's calls made on the event loop: what the middleware, its
settlement and its views share.

``Gate.principal`` turns a request's headers into a ``Principal`` (the key, the cached
resolver, the plan check) or refuses with the answer to send (401, 503). ``Gate.run`` calls
a limiter method whichever flavour it is: awaited (``AsyncLimiter``), inline (a sync limiter
on the memory engine) or in a worker thread (a sync limiter on a network store).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..backends.memory import MemoryBackend
from ..catalog import Principal
from ..errors import CatalogError, QuotaError
from ..headers import Snapshot, render_headers
from ..limiter import AsyncLimiter, Limiter
from ..overrides import plan_of
from .identity import KeyCache, extract_key, unknown_key
from .responses import unavailable
from .types import RawHeaders

log = logging.getLogger("quota.asgi")


class Gate:
    """The limiter and the key cache of one middleware."""

    def __init__(
        self, limiter: AsyncLimiter | Limiter, keys: KeyCache, offload: bool | None = None
    ) -> None:
        self.limiter = limiter
        self.catalog = limiter.catalog
        self.keys = keys
        if offload is None:
            offload = isinstance(limiter, Limiter) and not isinstance(
                limiter.backend, MemoryBackend
            )
        self.offload = offload

    async def principal(self, headers: RawHeaders) -> Principal:
        """The principal of a request's key; ApiError 401 (missing, malformed or unknown key)
        or 503 (the resolver failed, or the plan is not in the catalog)."""
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
        if who.overrides:
            try:
                plan_of(self.catalog, who)  # checked once per deal, then cached
            except CatalogError as exc:
                log.error("quota: account %r has a deal that does not fit: %s", who.account, exc)
                raise unavailable(
                    "this account's plan is not configured", "plan_unavailable"
                ) from None
        return who

    async def run(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a limiter method: awaited (async), inline or in a thread (sync)."""
        if isinstance(self.limiter, AsyncLimiter):
            return await method(*args, **kwargs)
        if self.offload:
            import asyncio  # only here: importing asyncio costs ``import quota`` ~20 ms

            return await asyncio.to_thread(method, *args, **kwargs)
        return method(*args, **kwargs)

    async def current_headers(self, who: Principal) -> dict[str, str]:
        """The account's current state as response headers (charges nothing; none when the
        store cannot be read)."""
        try:
            states = await self.run(self.limiter.peek, who)
        except QuotaError:
            log.exception("quota: peek failed for account %r", who.account)
            return {}
        return render_headers(Snapshot(states, self.limiter.clock(), self.catalog.headers))
