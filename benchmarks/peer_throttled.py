"""``throttled-py``: one ``Throttled`` per limit, ``limit(key, cost)`` on each in turn.

Per-minute limits use its ``sliding_window`` (a two-counter estimate over epoch-aligned
windows), daily ones its ``fixed_window`` (epoch-aligned, i.e. UTC days). Like ``limits`` it
has no all-or-nothing across limits: the caller stops at the first refusal.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from .shapes import Limit, Shape, accounts
from .timing import ADecide, Decide

TITLE = "throttled-py"


def algorithm(lim: Limit) -> str:
    return "sliding_window" if lim.kind == "sliding" else "fixed_window"


def note(shape: Shape) -> str:
    if len(shape.limits) == 1:
        return "limit() (sliding window)"
    return (
        f"limit() on each of {len(shape.limits)} Throttled (sliding window per minute, fixed"
        " window per day) in turn, stop at the first refusal"
    )


def _quota(lim: Limit, module: Any) -> Any:
    return (module.per_min if lim.per == "minute" else module.per_day)(lim.amount)


def _plan(shape: Shape, throttles: list[Any]) -> list[list[tuple[Any, str, int]]]:
    out = []
    for account, key in accounts(shape.accounts):
        checks = []
        for lim, throttle in zip(shape.limits, throttles, strict=True):
            subject = f"{lim.name}:{account}" + (f":{key}" if lim.scope == "key" else "")
            checks.append((throttle, subject, shape.cost_of(lim)))
        out.append(checks)
    return out


def sync(shape: Shape, url: str) -> tuple[Decide, Callable[[], None]]:
    """``url``: ``memory://`` or ``redis://host:port/db``."""
    import throttled

    store = throttled.MemoryStore() if url == "memory://" else throttled.RedisStore(server=url)
    throttles = [
        throttled.Throttled(using=algorithm(lim), quota=_quota(lim, throttled), store=store)
        for lim in shape.limits
    ]
    cycle = itertools.cycle(_plan(shape, throttles))

    def decide() -> bool:
        for throttle, subject, cost in next(cycle):
            if throttle.limit(subject, cost=cost).limited:
                return False
        return True

    return decide, lambda: None


async def asynchronous(shape: Shape, url: str) -> tuple[ADecide, Callable[[], Awaitable[None]]]:
    """``throttled.asyncio``: the same with awaited ``limit()``."""
    import throttled
    from throttled import asyncio as athrottled

    store = athrottled.MemoryStore() if url == "memory://" else athrottled.RedisStore(server=url)
    throttles = [
        athrottled.Throttled(using=algorithm(lim), quota=_quota(lim, throttled), store=store)
        for lim in shape.limits
    ]
    cycle = itertools.cycle(_plan(shape, throttles))

    async def decide() -> bool:
        for throttle, subject, cost in next(cycle):
            if (await throttle.limit(subject, cost=cost)).limited:
                return False
        return True

    async def close() -> None:
        return None

    return decide, close
