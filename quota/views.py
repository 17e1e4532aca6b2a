"""Ready-made answers for the two account endpoints a gateway exposes: ``/stats`` (what is
left, when it resets, what was used) and ``/validate`` (is the key valid, what may it do).

Plain functions returning JSON-ready dicts (only str, int, float, bool, None, lists and dicts);
``QuotaMiddleware(views=True)`` serves them. ``stats`` reads the store (one peek, plus one read
of the usage history when the catalog keeps it); ``validate`` reads only the catalog.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .catalog import Catalog, Plan, Principal
from .decision import LimitState
from .frozen import thaw
from .limit import Limit
from .limiter import AsyncLimiter, Limiter
from .overrides import plan_of

JSON = dict[str, Any]

#: Days of usage history ``stats`` reports (at most the catalog's ``history_days``).
STATS_DAYS = 30


def _iso(epoch_s: float) -> str:
    """UTC ISO 8601 to the second, ``Z``-suffixed."""
    when = dt.datetime.fromtimestamp(round(epoch_s), dt.timezone.utc)
    return when.isoformat().replace("+00:00", "Z")


def _plan(plan: Plan) -> JSON:
    return {
        "name": plan.name,
        "description": plan.description,
        "price": plan.price,
        "priority": plan.priority,
    }


def _limit_state(s: LimitState, now: float) -> JSON:
    return {
        "name": s.name,
        "meter": s.meter,
        "algorithm": s.algorithm,
        "scope": s.scope,
        "limit": s.limit,
        "remaining": s.remaining,
        "used": max(0, s.limit - s.remaining),
        "window_seconds": s.window,
        # When the meter is fully replenished (now, when nothing is used).
        "resets_in_seconds": s.reset_after,
        "resets_at": _iso(now + s.reset_after),
    }


def stats_body(
    catalog: Catalog,
    who: Principal,
    now: float,
    states: list[LimitState],
    usage: dict[str, dict[str, int]] | None,
) -> JSON:
    """The ``/stats`` body from a peek's ``states`` and ``usage`` (None: no history)."""
    plan = catalog.plan(who.plan)
    balances = {s.meter: s.remaining for s in states if s.algorithm == "balance"}
    credits = None
    if "credits" in balances:
        grant = next(s.limit for s in states if s.algorithm == "balance" and s.meter == "credits")
        credits = {"balance": balances["credits"], "limit": grant}
    body: JSON = {
        "object": "stats",
        "plan": _plan(plan),
        "now": _iso(now),
        "credits": credits,
        "balances": balances,
        "limits": [_limit_state(s, now) for s in states if s.algorithm != "balance"],
        "usage": None,
    }
    if usage is not None:
        today = next(reversed(usage.values()))
        body["usage"] = {"timezone": _zone_name(catalog, plan), "today": today, "daily": usage}
    return body


def _zone_name(catalog: Catalog, plan: Plan) -> str:
    return plan.timezone or catalog.timezone


def history_days(catalog: Catalog) -> int:
    """Days of history ``stats`` reports: 30, or fewer when the catalog keeps fewer."""
    return min(STATS_DAYS, catalog.usage.history_days)


def stats(limiter: Limiter, who: Principal) -> JSON:
    """The account's plan, credit balance, every limit with what remains and when it resets
    (seconds and ISO time), and its daily usage (last 30 days, when the catalog keeps it)."""
    now = limiter.clock()
    states = limiter.peek(who)
    days = history_days(limiter.catalog)
    usage = limiter.usage(who, days=days) if days else None
    return stats_body(limiter.catalog, who, now, states, usage)


async def astats(limiter: AsyncLimiter, who: Principal) -> JSON:
    """``stats`` for an ``AsyncLimiter``."""
    now = limiter.clock()
    states = await limiter.peek(who)
    days = history_days(limiter.catalog)
    usage = await limiter.usage(who, days=days) if days else None
    return stats_body(limiter.catalog, who, now, states, usage)


def _rate(limit: Limit) -> JSON:
    out: JSON = {"name": limit.name, "meter": limit.meter, "algorithm": limit.algorithm}
    if limit.algorithm == "balance":
        out["grant"] = limit.grant
    elif limit.algorithm == "concurrency":
        out["in_flight"] = limit.amount
    else:
        out["rate"] = limit.rate or f"{limit.amount}/{limit.period}"
        out["limit"] = limit.amount
        out["window_seconds"] = limit.window_seconds
        if limit.algorithm == "calendar":
            out["window_seconds"] = None  # a calendar day/month: its length varies
            out["per"] = "billing month" if limit.anchor == "cycle" else limit.unit
    out["scope"] = limit.scope
    if limit.models is not None:
        out["models"] = list(limit.models)  # only requests for these models meet it
    if limit.reserve is not None:  # ``limit`` above is what this plan may use of it
        out["reserve"] = {
            "share": limit.reserve.share,
            "priority": limit.reserve.priority,
            "held_back": limit.held,
        }
    if limit.shadow:
        out["shadow"] = True
    return out


def validate(catalog: Catalog, who: Principal | None) -> JSON:
    """Whether the key is valid (``who`` is None for an unknown key), its plan and what it may
    do: model tiers and ids, features (every feature a plan of the catalog names, as booleans)
    and its limits as rates, with the principal's overrides applied (and listed under
    ``overrides``). Raises UnknownPlanError for a plan the catalog lacks, CatalogError for
    overrides that do not fit it."""
    if who is None:
        return {"object": "validation", "valid": False}
    plan = plan_of(catalog, who)
    tiers = sorted({info.tier for info in catalog.models.values()} | {catalog.default_tier})
    named = sorted({f for p in catalog.plans.values() for f in p.features} - {"*"})
    return {
        "object": "validation",
        "valid": True,
        "plan": _plan(plan),
        "capabilities": {
            "models": {
                "allowed": list(plan.models),
                "tiers": [t for t in tiers if "*" in plan.models or t in plan.models],
                "listed": sorted(m for m in catalog.models if catalog.allows_model(plan, m)),
            },
            "features": {f: catalog.allows_feature(plan, f) for f in named},
            "success_only": plan.success_only,
            "limits": [_rate(lim) for lim in plan.limits],
        },
        **({"overrides": thaw(who.overrides)} if who.overrides else {}),
    }
