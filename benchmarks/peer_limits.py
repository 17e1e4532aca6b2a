"""The ``limits`` package: one strategy object, ``hit()`` on each limit in turn.

A ``limits`` user checks several limits by calling ``hit()`` on each item one after another,
stopping at the first refusal; limits hit before a refusal stay charged (there is no
all-or-nothing across items). Daily limits become ``RateLimitItemPerDay`` items.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .shapes import Limit, Shape, accounts
from .timing import ADecide, Decide

STRATEGIES = {
    "fixed": "FixedWindowRateLimiter",
    "swc": "SlidingWindowCounterRateLimiter",
    "moving": "MovingWindowRateLimiter",
}
TITLES = {
    "fixed": "fixed window",
    "swc": "sliding window counter",
    "moving": "moving window",
    "mixed": "moving window + fixed window",
}


@dataclass(frozen=True)
class Variant:
    """Which strategy each limit gets: one for all, or ``mixed`` (moving window for the
    per-minute limits, fixed window for the daily ones: the closest to quota's semantics)."""

    key: str

    @property
    def title(self) -> str:
        return f"limits ({TITLES[self.key]})"

    def strategy_for(self, lim: Limit) -> str:
        if self.key == "mixed":
            return "moving" if lim.per == "minute" else "fixed"
        return self.key


VARIANTS = [Variant(k) for k in ("fixed", "swc", "moving", "mixed")]


def _item(lim: Limit) -> Any:
    from limits import RateLimitItemPerDay, RateLimitItemPerMinute

    cls = RateLimitItemPerMinute if lim.per == "minute" else RateLimitItemPerDay
    return cls(lim.amount, namespace=lim.name)


def _plan(shape: Shape, variant: Variant, strategies: dict[str, Any]) -> list[Any]:
    """Per account: [(strategy, item, identifiers, cost)] in the order they are hit."""
    out = []
    for account, key in accounts(shape.accounts):
        checks = []
        for lim in shape.limits:
            ids = (account, key) if lim.scope == "key" else (account,)
            checks.append(
                (strategies[variant.strategy_for(lim)], _item(lim), ids, shape.cost_of(lim))
            )
        out.append(checks)
    return out


def note(shape: Shape, variant: Variant) -> str:
    if len(shape.limits) == 1:
        return "hit()"
    return f"hit() on each of the {len(shape.limits)} items in turn, stop at the first refusal"


def sync(shape: Shape, variant: Variant, url: str) -> tuple[Decide, Callable[[], None]]:
    """``url``: ``memory://`` or ``redis://host:port/db``."""
    import limits.strategies as strategies_mod
    from limits.storage import storage_from_string

    storage = storage_from_string(url)
    strategies = {k: getattr(strategies_mod, v)(storage) for k, v in STRATEGIES.items()}
    cycle = itertools.cycle(_plan(shape, variant, strategies))

    def decide() -> bool:
        for strategy, item, ids, cost in next(cycle):  # noqa: SIM110 (no generator cost)
            if not strategy.hit(item, *ids, cost=cost):
                return False
        return True

    return decide, lambda: None


async def asynchronous(
    shape: Shape, variant: Variant, url: str
) -> tuple[ADecide, Callable[[], Awaitable[None]]]:
    """The asyncio flavour (``limits.aio``; redis-py as the async Redis client)."""
    import limits.aio.strategies as strategies_mod
    from limits.storage import storage_from_string

    options = {"implementation": "redispy"} if url.startswith("redis") else {}
    storage = storage_from_string(f"async+{url}", **options)
    strategies = {k: getattr(strategies_mod, v)(storage) for k, v in STRATEGIES.items()}
    cycle = itertools.cycle(_plan(shape, variant, strategies))

    async def decide() -> bool:
        for strategy, item, ids, cost in next(cycle):
            if not await strategy.hit(item, *ids, cost=cost):
                return False
        return True

    async def close() -> None:
        return None

    return decide, close
