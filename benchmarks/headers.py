"""``Decision.headers()`` for the Zylo basic decision: what every gateway pays per response.

In-process, no store: one admitted decision on the memory engine, its headers rendered over
and over (the catalog's styles: IETF ``RateLimit`` and OpenAI's ``x-ratelimit-*``).
"""

from __future__ import annotations

import time

import quota

COST = {"requests": 1, "tokens": 500, "web_extract": 1}


def measure(calls: int = 50_000, rounds: int = 5) -> float:
    """Best-of-``rounds`` microseconds per ``headers()`` call."""
    limiter = quota.Limiter(quota.Catalog.load("zylo"), "memory://", clock=lambda: 1.77e9)
    decision = limiter.acquire(quota.Principal(account="a", plan="basic", key="k"), COST)
    if not decision.allowed or len(decision.states) != 4:
        raise RuntimeError("the Zylo basic decision should be admitted with four limits")
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            decision.headers()
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    return best


def run() -> tuple[str, float]:
    us = measure()
    table = (
        "| what | µs per call |\n|---|---:|\n" + f"| `Decision.headers()`, 4 limits | {us:.2f} |"
    )
    return table, us
