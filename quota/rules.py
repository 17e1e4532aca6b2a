"""What a decision needs of one limit (``Rule``), read once per catalog: pydantic attribute
access and property calls are not free on a path that runs per request."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from math import gcd

from .algorithms import Params
from .history import HISTORY
from .limit import Limit


@dataclass(frozen=True, slots=True)
class Rule:
    """One limit as the planner and the verdicts read it."""

    limit: Limit
    name: str
    meter: str
    algorithm: str
    capacity: int
    window: float | None
    scope: str
    status: int
    code: str
    static: Params | None  # params that depend neither on time nor on the principal
    shadow: bool
    models: tuple[str, ...] | None  # only requests for these models (ids, globs, tiers)
    held: int  # capacity held back from this plan for higher priorities (``Limit.reserve``)


def static_params(limit: Limit) -> Params | None:
    """Params that depend neither on time nor on the principal; None for window algorithms."""
    algo, amount, period = limit.algorithm, limit.amount, limit.period_ms
    if algo == "sliding_window":
        return (amount, period, limit.precision)
    if algo == "token_bucket":
        g = gcd(amount, period)
        return (amount // g, period // g, limit.capacity)
    if algo == "balance":
        return (limit.grant,)
    if algo == "concurrency":
        return (amount, period)  # (limit, lease)
    return None


def rule_of(lim: Limit) -> Rule:
    """The Rule of one limit."""
    return Rule(
        lim,
        lim.name,
        lim.meter,
        lim.algorithm,
        lim.capacity,
        lim.window_seconds,
        lim.scope,
        lim.status,
        lim.code,
        static_params(lim),
        lim.shadow,
        None if lim.models is None else tuple(lim.models),
        lim.held,
    )


def for_model(entries: tuple[str, ...], model: str, tier: str) -> bool:
    """Whether a request for ``model`` (of ``tier``) meets a limit on ``entries``: a tier, a
    model id or a glob, matched as plan entitlements are (``Catalog.allows_model``)."""
    return any(e == tier or fnmatchcase(model, e) for e in entries)


def window_of(rule: Rule, params: Params) -> tuple[int, int] | None:
    """The span ``[start, end)`` of time within which ``params`` (computed for one instant)
    stay what the rule's algorithm needs; None when they hold at any time."""
    algo = rule.algorithm
    if algo in ("fixed_window", "calendar"):
        return params[1], params[2]
    if algo == HISTORY:  # (day_start, day_end, keep_from)
        return params[0], params[1]
    return None  # static params, or an allowance's (limit, start, end): the same at any time
