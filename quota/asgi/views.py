"""``GET /stats`` and ``GET /validate`` answered by the middleware itself (``views=True``).

Both need the key like any request and charge nothing. ``/stats`` answers 401 for a missing or
unknown key; ``/validate`` answers ``{"valid": false, ...}`` with 401. Both carry the account's
rate-limit headers when the key is valid (``/stats`` from the same peek as its body).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from ..decision import Decision
from ..errors import QuotaError
from ..views import history_days, stats_body, validate
from .identity import extract_key, unknown_key
from .responses import ApiError, send_error, send_json, unavailable
from .types import Scope, Send

if TYPE_CHECKING:
    from .middleware import QuotaMiddleware

log = logging.getLogger("quota.asgi")

View = Literal["stats", "validate"]
_DEFAULT: dict[str, View] = {"/stats": "stats", "/validate": "validate"}


def view_paths(views: bool | Mapping[str, str]) -> dict[str, View]:
    """Path -> view. ``True``: ``/stats`` and ``/validate``, also under ``/v1``; a mapping
    names the paths itself (``{"/account/stats": "stats"}``)."""
    if views is False:
        return {}
    if views is True:
        return {**_DEFAULT, **{f"/v1{p}": v for p, v in _DEFAULT.items()}}
    out: dict[str, View] = {}
    for path, view in dict(views).items():
        if view not in ("stats", "validate") or not path.startswith("/"):
            raise ValueError(
                f"views maps paths ('/...') to 'stats' or 'validate', got {path!r}: {view!r}"
            )
        out[path.rstrip("/") or "/"] = "stats" if view == "stats" else "validate"
    return out


async def serve_view(mw: QuotaMiddleware, view: View, scope: Scope, send: Send) -> None:
    """Identify the key and answer ``view`` as JSON; nothing reaches the app."""
    try:
        key = extract_key(scope.get("headers") or [])
        try:
            who = await mw.keys.lookup(key)
        except Exception:
            log.exception("quota: the key resolver failed")
            raise unavailable("cannot check the API key right now", "auth_unavailable") from None
        if who is not None and who.plan not in mw.catalog.plans:
            raise unavailable("this account's plan is not configured", "plan_unavailable")
        if who is None:
            raise unknown_key()
    except ApiError as error:
        if view == "validate" and error.status == 401:
            body = {**validate(mw.catalog, None), **error.body()}
            await send_json(send, 401, body, error.headers)
        else:
            await send_error(send, error)
        return
    if view == "validate":
        await send_json(send, 200, validate(mw.catalog, who), await mw._peek_headers(who))
        return
    limiter = mw.limiter
    try:
        now = limiter.clock()
        states = await mw._run(limiter.peek, who)
        days = history_days(mw.catalog)
        usage = await mw._run(limiter.usage, who, days=days) if days else None
    except QuotaError:
        log.exception("quota: /stats failed for account %r", who.account)
        await send_error(send, unavailable("the quota service is unavailable", "quota_unavailable"))
        return
    headers = Decision(
        allowed=True,
        status=200,
        principal=who,
        now=now,
        states=tuple(states),
        header_config=mw.catalog.headers,
    ).headers()
    await send_json(send, 200, stats_body(mw.catalog, who, now, states, usage), headers)


__all__ = ["View", "serve_view", "view_paths"]
