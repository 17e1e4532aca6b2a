"""Load: several processes at full speed for most of a minute against one real Redis.

Workers (blocking and asyncio limiters, on the server's clock as in production) hammer a shared
set of accounts. Every admitted decision reports the window it was charged to (its reservation's
anchor), so the sum admitted per account and window is checked exactly against the limit: no
error, no over-admission, and a window that denied someone was full (no under-admission either).
Memory stays bounded: every key carries a TTL and the dataset does not grow with the traffic.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import random
import time
from collections import Counter
from typing import Any

import redis
from servers import redis_server

import quota

#: Store errors raise BackendError here (no failure policy answers in their place).
RAISE = "raise"

SECONDS = float(os.environ.get("QUOTA_LOAD_SECONDS", "45"))
ACCOUNTS = 24
LIMITS = {"rps": 20, "tpw": 100_000}  # requests per second, tokens per 10-second window
PLAN: dict[str, Any] = {
    "name": "load",
    "reservation_ttl": 3,
    "meters": {"names": ["requests", "tokens"]},
    "plans": {
        "p": {
            "limits": [
                {"name": "rps", "meter": "requests", "algorithm": "fixed_window",
                 "limit": LIMITS["rps"], "period": "1 second"},
                {"name": "tpw", "meter": "tokens", "algorithm": "fixed_window",
                 "limit": LIMITS["tpw"], "period": "10 seconds"},
                {"name": "rpm", "meter": "requests", "rate": "1000000/minute"},
            ]
        }
    },
}  # fmt: skip
WORKERS = [("sync", 0), ("sync", 1), ("async", 2), ("async", 3)]

Tally = dict[tuple[str, str, int], int]  # (account, limit, window start) -> amount admitted


def _record(tally: Tally, denied: Tally, d: quota.Decision, cost: dict[str, int]) -> None:
    """Add an admitted decision's cost to the window each fixed limit charged it to: its
    reservation's anchor (the start of the window charged, which is a stored window newer
    than the caller's clock when that clock is slightly behind)."""
    if not d.allowed:
        denied[(d.principal.account, d.denied_by or "", 0)] = 1
        return
    assert d.reservation is not None
    if d.reservation.request_id is not None:
        return
    for charge in d.reservation.charges:
        if charge.field in LIMITS:
            key = (d.principal.account, charge.field, charge.anchor)
            tally[key] = tally.get(key, 0) + cost[charge.meter]


def _cost(rng: random.Random) -> tuple[quota.Principal, dict[str, int], str | None]:
    """A random decision. One in 50 carries a request id (a reservation record with a TTL):
    those go to accounts of their own, because their decisions do not report the window they
    were charged to, which the exact count needs."""
    rid = f"r{rng.getrandbits(64)}" if rng.random() < 0.02 else None
    account = f"acct_{rng.randrange(ACCOUNTS)}" if rid is None else f"acct_r{rng.randrange(4)}"
    cost = {"requests": 1, "tokens": rng.randint(1, 200)}
    return quota.Principal(account=account, plan="p"), cost, rid


def worker(kind: str, seed: int, url: str, out: Any) -> None:
    """Run decisions until the deadline; put (decisions, errors, admitted tally, denials)."""
    rng = random.Random(seed)
    catalog = quota.Catalog.load(PLAN)
    tally: Tally = {}
    denied: Tally = {}
    done = errors = 0
    deadline = time.monotonic() + SECONDS
    if kind == "sync":
        with quota.Limiter(catalog, url, on_error=RAISE) as limiter:
            while time.monotonic() < deadline:
                who, cost, rid = _cost(rng)
                try:
                    _record(tally, denied, limiter.acquire(who, cost, request_id=rid), cost)
                except quota.QuotaError:
                    errors += 1
                done += 1
    else:

        async def task(limiter: quota.AsyncLimiter) -> None:
            nonlocal done, errors
            while time.monotonic() < deadline:
                who, cost, rid = _cost(rng)
                try:
                    _record(tally, denied, await limiter.acquire(who, cost, request_id=rid), cost)
                except quota.QuotaError:
                    errors += 1
                done += 1

        async def main() -> None:
            async with quota.AsyncLimiter(catalog, url, on_error=RAISE) as limiter:
                await asyncio.gather(*(task(limiter) for _ in range(24)))

        asyncio.run(main())
    out.put((done, errors, tally, denied))


def test_processes_at_full_speed_stay_exact_and_bounded() -> None:
    with redis_server() as port:
        url = f"redis://127.0.0.1:{port}/0"
        admin = redis.Redis(port=port, decode_responses=True)
        quota.Limiter(
            quota.Catalog.load(PLAN), url, on_error=RAISE
        ).acquire(  # load the script, warm up
            quota.Principal(account="warm", plan="p"), {"requests": 1}
        )
        before = int(admin.info("memory")["used_memory"])
        ctx = mp.get_context("fork")  # no re-import: the minute is spent deciding
        out = ctx.Queue()
        procs = [ctx.Process(target=worker, args=(k, s, url, out)) for k, s in WORKERS]
        for p in procs:
            p.start()
        results = [out.get(timeout=SECONDS + 60) for _ in procs]
        elapsed = SECONDS  # each worker runs for SECONDS once started
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0
        total = sum(r[0] for r in results)
        errors = sum(r[1] for r in results)
        admitted: Counter[tuple[str, str, int]] = Counter()
        for r in results:
            admitted.update(r[2])
        rate = total / elapsed
        print(f"\nload: {total} decisions in {elapsed:.1f} s by {len(procs)} processes on "
              f"{os.cpu_count()} cores = {rate:.0f} decisions/s; "
              f"{sum(admitted[k] for k in admitted if k[1] == 'rps')} admitted")  # fmt: skip
        assert errors == 0
        assert total > 1000 * SECONDS / 10  # it really ran under load
        over = {k: v for k, v in admitted.items() if v > LIMITS[k[1]]}
        assert not over, over  # never more than the limit in any window of any account
        full = [k for k, v in admitted.items() if k[1] == "rps" and v == LIMITS["rps"]]
        assert full, "the test must push accounts to their limit"
        # Memory: every key expires; the dataset is a few small hashes and short-lived records.
        keys = list(admin.scan_iter(count=1000))
        no_ttl = [k for k in keys if admin.pttl(k) == -1]  # -2: expired since the scan
        assert not no_ttl, no_ttl
        assert sum(1 for k in keys if ":r:" not in k) <= ACCOUNTS + 4 + 1
        grown = int(admin.info("memory")["used_memory"]) - before
        print(f"load: memory grew by {grown / 1024:.0f} KiB for {len(keys)} keys")
        assert grown < 8 * 1024 * 1024
