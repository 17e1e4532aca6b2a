"""``AsyncLimiter`` on Redis: many concurrent requests, one atomic decision each, coalesced
into pipelines; the limit holds exactly however many workers race for it.

    QUOTA_REDIS_URL=redis://localhost:6379/0 uv run python examples/async_redis.py
"""

from __future__ import annotations

import asyncio
import os
import uuid

import quota

URL = os.environ.get("QUOTA_REDIS_URL", "redis://localhost:6379/0")


async def main() -> None:
    async with quota.AsyncLimiter("zylo", URL) as limiter:  # measures the server clock first
        who = quota.Principal(account=f"example-{uuid.uuid4().hex[:8]}", plan="basic")
        decisions = await asyncio.gather(
            *(limiter.acquire(who, {"requests": 1, "tokens": 100}) for _ in range(50))
        )
        admitted = sum(d.allowed for d in decisions)
        retry = min(d.retry_after or 0 for d in decisions if not d.allowed)
        print(f"50 concurrent requests: {admitted} admitted, {50 - admitted} denied by rpm")
        print(f"next slot in {retry:.1f}s")
        print(await limiter.usage(who, days=1))
        await limiter.reset(who)


asyncio.run(main())
