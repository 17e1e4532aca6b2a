"""``pyrate-limiter`` 4: one bucket per limit and subject, routed by a ``BucketFactory``.

Per-minute limits use its ``SlidingWindowLog`` (exact, one log entry per unit of cost),
daily ones its ``FixedWindow`` (epoch-aligned days; also one entry per unit, so 500 tokens
are 500 entries). One ``Limiter``; ``try_acquire(name, weight, blocking=False)`` on each
limit in turn, stopping at the first refusal (no all-or-nothing across buckets).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .shapes import Limit, Shape, accounts
from .timing import ADecide, Decide

TITLE = "pyrate-limiter"
Clock = Callable[[], int]


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def note(shape: Shape) -> str:
    if len(shape.limits) == 1:
        return "try_acquire(blocking=False) (sliding window log)"
    return (
        f"try_acquire(blocking=False) on each of {len(shape.limits)} buckets (sliding window"
        " log per minute, fixed window per day) in turn, stop at the first refusal"
    )


def algorithm(lim: Limit) -> Any:
    import pyrate_limiter as pl

    return pl.SlidingWindowLog() if lim.kind == "sliding" else pl.FixedWindow()


def rate(lim: Limit) -> Any:
    import pyrate_limiter as pl

    return pl.Rate(lim.amount, pl.Duration.MINUTE if lim.per == "minute" else pl.Duration.DAY)


def factory(buckets: dict[str, Any], clock: Clock = wall_ms, leak: bool = True) -> Any:
    """A ``BucketFactory`` that routes an item to its bucket by name (what a multi-account
    user writes), stamping items with ``clock`` (epoch ms); buckets leak as the docs show."""
    import pyrate_limiter as pl

    class ByName(pl.BucketFactory):
        def __init__(self) -> None:
            self.buckets = buckets
            if leak:
                for bucket in buckets.values():
                    self.schedule_leak(bucket)

        def wrap_item(self, name: str, weight: int = 1) -> Any:
            return pl.RateItem(name, clock(), weight=weight)

        def get(self, item: Any) -> Any:
            return self.buckets[item.name]

    return ByName()


def _subjects(shape: Shape) -> list[list[tuple[Limit, str, int]]]:
    out = []
    for account, key in accounts(shape.accounts):
        out.append(
            [
                (lim, f"{lim.name}:{account}" + (f":{key}" if lim.scope == "key" else ""), c)
                for lim in shape.limits
                for c in [shape.cost_of(lim)]
            ]
        )
    return out


def sync(
    shape: Shape, url: str, clock: Clock = wall_ms, leak: bool = True
) -> tuple[Decide, Callable[[], None]]:
    """``url``: ``memory://`` (``InMemoryBucket``) or ``redis://host:port/db`` (``RedisBucket``)."""
    import pyrate_limiter as pl

    subjects = _subjects(shape)
    buckets: dict[str, Any] = {}
    client = None
    if url != "memory://":
        import redis

        client = redis.Redis.from_url(url)
    for checks in subjects:
        for lim, name, _ in checks:
            if client is None:
                buckets[name] = pl.InMemoryBucket([rate(lim)], algorithm=algorithm(lim))
            else:
                buckets[name] = pl.RedisBucket.init(
                    [rate(lim)], client, f"pyrate:{name}", algorithm=algorithm(lim)
                )
    limiter = pl.Limiter(factory(buckets, clock, leak))
    cycle = itertools.cycle([[(name, cost) for _, name, cost in c] for c in subjects])

    def decide() -> bool:
        for name, cost in next(cycle):  # noqa: SIM110 (no generator cost)
            if not limiter.try_acquire(name, cost, blocking=False):
                return False
        return True

    def close() -> None:
        limiter.bucket_factory.close()
        if client is not None:
            client.close()

    return decide, close


async def asynchronous(shape: Shape, url: str) -> tuple[ADecide, Callable[[], Awaitable[None]]]:
    """``try_acquire_async`` (it serialises callers on the limiter's asyncio lock)."""
    import pyrate_limiter as pl

    subjects = _subjects(shape)
    buckets: dict[str, Any] = {}
    client = None
    if url != "memory://":
        import redis.asyncio as aredis

        client = aredis.Redis.from_url(url)
    for checks in subjects:
        for lim, name, _ in checks:
            if client is None:
                buckets[name] = pl.InMemoryBucket([rate(lim)], algorithm=algorithm(lim))
            else:
                buckets[name] = await pl.RedisBucket.init(
                    [rate(lim)], client, f"pyrate:{name}", algorithm=algorithm(lim)
                )
    limiter = pl.Limiter(factory(buckets))
    cycle = itertools.cycle([[(name, cost) for _, name, cost in c] for c in subjects])

    async def decide() -> bool:
        for name, cost in next(cycle):
            if not await limiter.try_acquire_async(name, cost, blocking=False):
                return False
        return True

    async def close() -> None:
        limiter.bucket_factory.close()
        if client is not None:
            await client.aclose()

    return decide, close
