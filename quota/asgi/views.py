"""``GET /stats`` and ``GET /validate`` answered by the middleware itself (``views=True``).

Both need the key like any request and charge nothing. ``/stats`` answers 401 for a missing or
unknown key; ``/validate`` answers ``{"valid": false, ...}`` with 401. Both carry the account's
rate-limit headers when the key is valid (``/stats`` from the same peek as its body).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

from ..errors import QuotaError
from ..headers import Snapshot, render_headers
from ..views import history_days, stats_body, validate
from .gate import Gate
from .responses import ApiError, send_error, send_json, unavailable
from .types import Scope, Send

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


async def serve_view(gate: Gate, view: View, scope: Scope, send: Send) -> None:
    """Identify the key and answer ``view`` as JSON; nothing reaches the app."""
    try:
        who = await gate.principal(scope.get("headers") or [])
    except ApiError as error:
        if view == "validate" and error.status == 401:
            body = {**validate(gate.catalog, None), **error.body()}
            await send_json(send, 401, body, error.headers)
        else:
            await send_error(send, error)
        return
    if view == "validate":
        await send_json(send, 200, validate(gate.catalog, who), await gate.current_headers(who))
        return
    limiter = gate.limiter
    try:
        now = limiter.clock()
        states = await gate.run(limiter.peek, who)
        days = history_days(gate.catalog)
        usage = await gate.run(limiter.usage, who, days=days) if days else None
    except QuotaError:
        log.exception("quota: /stats failed for account %r", who.account)
        await send_error(send, unavailable("the quota service is unavailable", "quota_unavailable"))
        return
    headers = render_headers(Snapshot(states, now, gate.catalog.headers))
    await send_json(send, 200, stats_body(gate.catalog, who, now, states, usage), headers)


__all__ = ["View", "serve_view", "view_paths"]
