"""Every library's decider for a shape and a backend, as (name, note, make) triples.

``make()`` builds a fresh decider (and its closer) on the given storage URL; the caller
flushes the Redis database before each, so every library starts from an empty store.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import quota

from . import peer_limits, peer_pyrate, peer_throttled
from .shapes import ONE, ZYLO, Shape, accounts, catalog_dict
from .timing import ADecide, Decide, Unexpected

SyncMake = Callable[[], tuple[Decide, Callable[[], None]]]
AsyncMake = Callable[[], Awaitable[tuple[ADecide, Callable[[], Awaitable[None]]]]]


@dataclass
class Contender:
    name: str
    note: str
    make: Any  # SyncMake or AsyncMake


def bench_catalog() -> quota.Catalog:
    return quota.Catalog.load(catalog_dict(ONE, ZYLO))


def quota_note(shape: Shape) -> str:
    limits = "1 limit" if len(shape.limits) == 1 else f"all {len(shape.limits)} limits"
    return f"acquire(): {limits}, all or nothing, one engine call"


def verdict(d: quota.Decision) -> bool:
    """``d.allowed``; a decision the failure policy took (the store failed) is not a
    measurement, and stops the run."""
    source = getattr(d, "source", "engine")
    if source not in ("engine", "cache"):
        raise Unexpected(f"quota decided by {source!r}: the store failed during the run")
    return d.allowed


def principals(shape: Shape) -> list[quota.Principal]:
    return [quota.Principal(account=a, plan=shape.name, key=k) for a, k in accounts(shape.accounts)]


def quota_sync(shape: Shape, url: str, **options: Any) -> SyncMake:
    def make() -> tuple[Decide, Callable[[], None]]:
        limiter = quota.Limiter(bench_catalog(), url, **options)
        cycle = itertools.cycle(principals(shape))
        cost = shape.cost
        acquire = limiter.acquire

        def decide() -> bool:
            return verdict(acquire(next(cycle), cost))

        return decide, limiter.close

    return make


def quota_async(shape: Shape, url: str, **options: Any) -> AsyncMake:
    async def make() -> tuple[ADecide, Callable[[], Awaitable[None]]]:
        limiter = quota.AsyncLimiter(bench_catalog(), url, **options)
        await limiter.__aenter__()
        cycle = itertools.cycle(principals(shape))
        cost = shape.cost

        async def decide() -> bool:
            return verdict(await limiter.acquire(next(cycle), cost))

        return decide, limiter.close

    return make


def peer_contenders(
    shape: Shape, url: str, variants: list[peer_limits.Variant] | None = None
) -> list[Contender]:
    """Every peer's synchronous decider for ``shape`` (``limits``: the given variants)."""
    out = []
    for v in peer_limits.VARIANTS if variants is None else variants:
        make = lambda v=v: peer_limits.sync(shape, v, url)  # noqa: E731
        out.append(Contender(v.title, peer_limits.note(shape, v), make))
    out.append(
        Contender(
            peer_throttled.TITLE,
            peer_throttled.note(shape),
            lambda: peer_throttled.sync(shape, url),
        )
    )
    out.append(
        Contender(peer_pyrate.TITLE, peer_pyrate.note(shape), lambda: peer_pyrate.sync(shape, url))
    )
    return out


def sync_contenders(shape: Shape, url: str) -> list[Contender]:
    variants = peer_limits.VARIANTS if len(shape.limits) > 1 else peer_limits.VARIANTS[:3]
    quota_row = Contender("quota", quota_note(shape), quota_sync(shape, url))
    return [quota_row, *peer_contenders(shape, url, variants)]


def async_contenders(shape: Shape, url: str) -> list[Contender]:
    note = quota_note(shape)
    out = [Contender("quota", f"AsyncLimiter.{note}", quota_async(shape, url))]
    if url.startswith("redis"):
        sep = "&" if "?" in url else "?"
        out.append(
            Contender(
                "quota, batch=false",
                f"AsyncLimiter.{note}; auto-batching off (one FCALL per decision)",
                quota_async(shape, f"{url}{sep}batch=false"),
            )
        )
    for v in peer_limits.VARIANTS:
        out.append(
            Contender(
                v.title,
                f"limits.aio: {peer_limits.note(shape, v)}",
                lambda v=v: peer_limits.asynchronous(shape, v, url),
            )
        )
    out.append(
        Contender(
            peer_throttled.TITLE,
            f"throttled.asyncio: {peer_throttled.note(shape)}",
            lambda: peer_throttled.asynchronous(shape, url),
        )
    )
    out.append(
        Contender(
            peer_pyrate.TITLE,
            f"try_acquire_async: {peer_pyrate.note(shape)}",
            lambda: peer_pyrate.asynchronous(shape, url),
        )
    )
    return out
