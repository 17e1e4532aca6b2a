"""Scenario 4: a client that is already blocked keeps hammering.

One account on the real Zylo ``basic`` plan sends chat requests until ``rpm`` (10/minute)
refuses, then keeps sending. quota answers from its in-process block cache (when this quota
has one: ``block_cache=True``, the default) without a round trip; the Redis commands the
server executes during the blocked phase are counted with INFO commandstats. The reference
is quota's allowed-path rate on the same backend (the Zylo basic decision of scenario 2).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import quota

from .contenders import Contender, peer_contenders, quota_sync, verdict
from .server import command_count
from .shapes import ZYLO, ZYLO_BASIC
from .throughput import Env, _sync_run, best_of
from .timing import Decide, Result, run_sync

ALLOWED = "quota, allowed path"
PRIME = 50  # at most this many requests to get blocked


def _quota_blocked(url: str, block_cache: bool) -> Callable[[], tuple[Decide, Callable[[], None]]]:
    def make() -> tuple[Decide, Callable[[], None]]:
        limiter = quota.Limiter(quota.Catalog.load("zylo"), url, block_cache=block_cache)
        who = quota.Principal(account="acct-blocked", plan="basic", key="sk-blocked")
        cost = ZYLO_BASIC.cost

        def decide() -> bool:
            return verdict(limiter.acquire(who, cost))

        return decide, limiter.close

    return make


def blocked_contenders(url: str) -> list[Contender]:
    return [
        Contender(
            "quota",
            "acquire() on the zylo catalog, plan basic, block_cache=True",
            _quota_blocked(url, True),
        ),
        Contender(
            "quota, block_cache=False",
            "acquire(); every refusal asks the engine",
            _quota_blocked(url, False),
        ),
        *peer_contenders(ZYLO_BASIC, url),
    ]


def _prime(name: str, decide: Decide) -> int:
    for n in itertools.count(1):
        if not decide():
            return n
        if n >= PRIME:
            break
    raise RuntimeError(f"{name}: still admitting after {PRIME} requests")


def _blocked_run(env: Env, c: Contender, redis: bool) -> Result:
    decide, close = c.make()
    try:
        _prime(c.name, decide)
        before = command_count(env.admin)
        r = run_sync(c.name, c.note, decide, env.cfg, expect=None)
        commands = command_count(env.admin) - before
    finally:
        close()
    total = r.decisions + env.cfg.warmup
    r.extra = f"{commands:,} ({commands / total:.2f}/decision)" if redis else "-"
    if r.admitted:
        r.note += f"; admitted {r.admitted} while blocked (window edge)"
    return r


def blocked(env: Env) -> dict[str, list[Result]]:
    out: dict[str, list[Result]] = {}
    for backend in ("redis", "memory"):
        url = env.url(backend)
        allowed = Contender(
            ALLOWED, "Zylo basic decision, every request admitted", quota_sync(ZYLO, url)
        )
        contenders = [allowed, *blocked_contenders(url)]

        def run_one(c: Contender, redis: bool = backend == "redis") -> Result:
            if c.name == ALLOWED:
                return _sync_run(env, c)
            return _blocked_run(env, c, redis)

        out[backend] = best_of(env, contenders, run_one, backend == "redis")
    return out
