"""Threshold alerts: declared in the catalog, detected by the engine inside the decision's own
call (memory, Redis, Cluster, fakeredis alike), at most once per window per limit state.

Clocks are injected (``FakeClock``); nothing sleeps. The webhook sender has its own module
(tests/test_webhooks.py).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import redis
from conftest import FakeClock

import quota
import quota.alerts
from quota.algorithms.thresholds import WATCH
from quota.backends.memory import MemoryBackend
from quota.backends.planned import PlannedOps
from quota.backends.redis import RedisBackend
from quota.backends.redis.codec import ALERTED, FAST

DAY = 86_400

PLANS: dict[str, Any] = {
    "name": "alerts",
    "alerts": {
        "used": [80, 100], "balance_below": [500, 200], "trial_left": {"days": 3, "calls": 2}
    },
    "groups": ["org"],
    "plans": {
        "p": {
            "limits": [
                {"name": "rpd", "meter": "requests", "algorithm": "calendar", "rate": "10/day"},
                {"name": "rpm", "meter": "requests", "rate": "20/minute"},
                {"name": "tpm", "meter": "tokens", "rate": "1000/minute", "alerts": [50]},
                {"name": "wallet", "meter": "credits", "algorithm": "balance", "grant": 1000},
                {"name": "odd", "meter": "odd", "algorithm": "fixed_window", "rate": "9/minute",
                 "alerts": []},
            ]
        },
        "trial": {
            "limits": [
                {"name": "free", "meter": "requests", "algorithm": "allowance",
                 "limit": 10, "period": "14 days"},
            ]
        },
        "org": {
            "limits": [
                {"name": "org_day", "meter": "requests", "algorithm": "calendar",
                 "rate": "10/day", "scope": "org"},
                {"name": "plat", "meter": "requests", "rate": "50/minute", "scope": "global"},
            ]
        },
    },
}  # fmt: skip

WHO = quota.Principal(account="acct", plan="p")


def seen(d: quota.Decision) -> list[tuple[str, str, int]]:
    return [(a.limit, a.kind, a.threshold) for a in d.alerts]


@pytest.fixture
def limiter(storage: str, clock: FakeClock) -> Iterator[quota.Limiter]:
    with quota.Limiter(quota.Catalog.load(PLANS), storage, clock=clock, on_error="raise") as lim:
        yield lim


def test_catalog_validates_alerts() -> None:
    bad = [
        {"alerts": {"used": [0, 80]}},
        {"alerts": {"used": [101]}},
        {"alerts": {"balance_below": 0}},
        {"alerts": {"trial_left": {"days": 0}}},
        {"alerts": {"unknown": 1}},
    ]
    for extra in bad:
        with pytest.raises(quota.CatalogError):
            quota.Catalog.load({**PLANS, **extra})
    limits = [{"name": "w", "meter": "credits", "algorithm": "balance", "alerts": [50]}]
    with pytest.raises(quota.CatalogError, match="windowed limits"):
        quota.Catalog.load({"plans": {"p": {"limits": limits}}})
    cat = quota.Catalog.load({**PLANS, "alerts": {"balance_below": 300}})
    assert cat.alerts.balance_below == [300] and cat.alerting
    assert not quota.Catalog.load("zylo").alerting


def test_each_threshold_once_per_window(limiter: quota.Limiter, clock: FakeClock) -> None:
    got = [seen(limiter.acquire(WHO, {"requests": 1})) for _ in range(10)]
    assert got[7] == [("rpd", "used", 80)]  # 8 of 10 used
    assert got[9] == [("rpd", "used", 100)]
    assert [g for i, g in enumerate(got) if i not in (7, 9)] == [[]] * 8
    assert not limiter.acquire(WHO, {"requests": 1}).allowed
    clock.advance(DAY)  # a new calendar day: a new window, alerts again
    got = [seen(limiter.acquire(WHO, {"requests": 1})) for _ in range(8)]
    assert got[-1] == [("rpd", "used", 80)]


def test_settling_below_and_crossing_again_emits_nothing(
    limiter: quota.Limiter, clock: FakeClock
) -> None:
    for _ in range(7):
        limiter.acquire(WHO, {"requests": 1})
    d = limiter.acquire(WHO, {"requests": 1})
    assert seen(d) == [("rpd", "used", 80)]
    for _ in range(3):  # usage falls back below 80% ...
        limiter.release(limiter.acquire(WHO, {"requests": 1}))
    limiter.release(d)
    assert limiter.peek(WHO)[0].remaining == 3
    crossed = limiter.acquire(WHO, {"requests": 1})  # ... and reaches it again
    assert crossed.allowed and crossed.alerts == ()
    d = limiter.acquire(WHO, {"requests": 2})  # 100% is still new in this window
    assert seen(d) == [("rpd", "used", 100)]


def test_one_decision_may_cross_several(limiter: quota.Limiter) -> None:
    d = limiter.acquire(WHO, {"requests": 1, "tokens": 1000})
    assert seen(d) == [("tpm", "used", 50)]  # the limit's own list replaces [alerts] used
    d = limiter.acquire(WHO, {"odd": 9, "requests": 9})
    assert seen(d) == [("rpd", "used", 80), ("rpd", "used", 100)]  # "odd" has alerts = []
    a = d.alerts[0]
    assert (a.account, a.plan, a.meter, a.scope, a.used, a.capacity, a.remaining) == (
        "acct", "p", "requests", "account", 10, 10, 0,
    )  # fmt: skip
    assert a.reset_at == pytest.approx(d.now + DAY) and a.at == d.now


def test_sliding_window_alerts_once_per_period(limiter: quota.Limiter, clock: FakeClock) -> None:
    d = limiter.acquire(WHO, {"requests": 1, "tokens": 500})
    assert seen(d) == [("tpm", "used", 50)]
    clock.advance(61)  # the window emptied, but the period since the alert ran out too
    assert limiter.acquire(WHO, {"requests": 1, "tokens": 400}).alerts == ()
    clock.advance(30)  # 91 s after the first alert: a new period
    assert seen(limiter.acquire(WHO, {"requests": 1, "tokens": 200})) == [("tpm", "used", 50)]


def test_balance_below_rearms_on_top_up(limiter: quota.Limiter) -> None:
    assert seen(limiter.acquire(WHO, {"credits": 500})) == []  # 500 left: not below 500
    assert seen(limiter.acquire(WHO, {"credits": 1})) == [("wallet", "balance_below", 500)]
    d = limiter.acquire(WHO, {"credits": 400})
    assert seen(d) == [("wallet", "balance_below", 200)]
    assert (d.alerts[0].used, d.alerts[0].capacity, d.alerts[0].reset_at) == (None, None, None)
    limiter.release(d)  # back above 200: no second alert while the marker stands
    assert limiter.acquire(WHO, {"credits": 400}).alerts == ()
    limiter.top_up(WHO, "credits", 1000)
    assert seen(limiter.acquire(WHO, {"credits": 600})) == [("wallet", "balance_below", 500)]


def test_trial_days_and_calls_left(limiter: quota.Limiter, clock: FakeClock) -> None:
    who = quota.Principal(account="t", plan="trial", cycle_start=clock.now)
    assert [seen(limiter.acquire(who, {"requests": 1})) for _ in range(7)] == [[]] * 7
    got = seen(limiter.acquire(who, {"requests": 1}))  # 2 calls left: also 80% used
    assert got == [("free", "used", 80), ("free", "trial_calls_left", 2)]
    clock.advance(11 * DAY + 1)  # less than 3 days left
    assert seen(limiter.acquire(who, {"requests": 1})) == [("free", "trial_days_left", 3)]
    assert seen(limiter.acquire(who, {"requests": 1})) == [("free", "used", 100)]


def test_group_and_global_limits_alert_once(limiter: quota.Limiter) -> None:
    members = [
        quota.Principal(account=f"m{i}", plan="org", groups={"org": "acme"}) for i in range(5)
    ]
    got = [seen(limiter.acquire(members[i % 5], {"requests": 1})) for i in range(10)]
    assert got[7] == [("org_day", "used", 80)] and got[9] == [("org_day", "used", 100)]
    assert sum(len(g) for g in got) == 2


def test_catalog_without_alerts_keeps_the_fast_path(redis_port: int) -> None:
    """No watches, no extra argument: the fast call (the FCALL's arguments) is what it was;
    a watched acquire is still one call, the script's ``alerted`` around the same words."""
    plain = dict(PLANS)
    plain.pop("alerts")
    plain["plans"] = {"p": {"limits": PLANS["plans"]["p"]["limits"][:2]}}
    quiet = {**plain, "alerts": {"balance_below": 5}}  # nothing of plan p is watched
    watched = {**plain, "alerts": {"used": [80]}}
    calls = {}
    for name, source in (("plain", plain), ("quiet", quiet), ("watched", watched)):
        engine = RedisBackend(redis.Redis(port=redis_port, decode_responses=True))
        lim = quota.Limiter(quota.Catalog.load(source), engine, on_error="raise")
        prep = lim.planner.prepare(WHO, {"requests": 1}, 1_000_000, None, None, None)
        assert isinstance(prep, quota.planner.Prepared) and type(prep.ops) is PlannedOps
        proto = engine.protocol
        calls[name] = proto.fast(prep.now, prep.slot, prep.ops, None)
        flow = proto.acquire(prep.now, prep.slot, prep.ops, None, 1000)
        calls[name + " sent"] = next(flow)
        assert (WATCH in prep.ops.targets.memo) == (name == "watched")
        lim.close()
    assert calls["plain"] == calls["quiet"] and calls["plain"] is not None
    assert calls["watched"] is None
    _, args = calls["watched sent"]
    assert args[0] == ALERTED and FAST in args
    assert args[args.index(FAST) :] == calls["plain"][0][1]  # type: ignore[index]


def _random_ops(seed: int, n: int) -> list[tuple[str, Any]]:
    rng = random.Random(seed)
    ops: list[tuple[str, Any]] = []
    for _ in range(n):
        kind = rng.choice(["acquire"] * 6 + ["settle", "release", "advance", "top_up"])
        if kind == "acquire":
            cost = {"requests": rng.randint(0, 3), "tokens": rng.choice([0, 100, 250, 600])}
            cost["credits"] = rng.choice([0, 50, 150])
            ops.append((kind, (rng.choice(["a", "b"]), cost)))
        elif kind == "advance":
            ops.append((kind, rng.choice([1, 7, 30, 61, 3600, 20_000])))
        elif kind == "settle":
            ops.append((kind, {"tokens": rng.choice([0, 50, 900]), "credits": rng.randint(0, 300)}))
        else:
            ops.append((kind, None))
    return ops


def _play(storage: Any, ops: list[tuple[str, Any]]) -> list[Any]:
    clock = FakeClock()
    lim = quota.Limiter(quota.Catalog.load(PLANS), storage, clock=clock, on_error="raise")
    out: list[Any] = []
    last: list[quota.Decision] = []
    for kind, arg in ops:
        if kind == "acquire":
            d = lim.acquire(quota.Principal(account=arg[0], plan="p"), arg[1])
            out.append((d.allowed, [a.as_dict() for a in d.alerts]))
            if d.allowed:
                last.append(d)
        elif kind == "advance":
            clock.advance(arg)
        elif kind in ("settle", "release") and last:
            d = last.pop(0)
            lim.settle(d, arg) if kind == "settle" else lim.release(d)
        elif kind == "top_up":
            lim.top_up(quota.Principal(account="a", plan="p"), "credits", 700)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_differential_alert_sequences(redis_port: int, seed: int) -> None:
    """The same random operations give the same decisions and alerts on every engine."""
    ops = _random_ops(seed, 300)
    single = redis.Redis(port=redis_port, decode_responses=True)
    fake = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    memory = _play(MemoryBackend(), ops)
    assert sum(len(a) for _, a in memory) >= 5  # the sequence does reach thresholds
    assert _play(RedisBackend(single, prefix=f"alerts-diff-{seed}"), ops) == memory
    assert _play(RedisBackend(fake), ops) == memory


def test_request_ids_alert_once_and_replays_carry_none(limiter: quota.Limiter) -> None:
    for i in range(7):
        limiter.acquire(WHO, {"requests": 1}, request_id=f"r{i}")
    d = limiter.acquire(WHO, {"requests": 1}, request_id="r7")  # the record path
    assert seen(d) == [("rpd", "used", 80)] and d.alerts[0].request_id == "r7"
    again = limiter.acquire(WHO, {"requests": 1}, request_id="r7")
    assert again.replayed and again.alerts == ()
    assert limiter.settle("r7", {"requests": 0}, who=WHO)
    assert limiter.acquire(WHO, {"requests": 1}, request_id="r8").alerts == ()


def test_async_limiter_alerts_once_when_batched(storage: str, clock: FakeClock) -> None:
    """Concurrent async decisions (auto-batched into one script call on Redis) cross each
    threshold once."""
    got: list[quota.alerts.Alert] = []

    class Sink:
        def alert(self, event: quota.alerts.Alert) -> None:
            got.append(event)

    async def main() -> int:
        catalog = quota.Catalog.load(PLANS)
        async with quota.AsyncLimiter(catalog, storage, clock=clock, alerts=Sink()) as lim:
            ds = await asyncio.gather(*(lim.acquire(WHO, {"requests": 1}) for _ in range(30)))
        return sum(d.allowed for d in ds)

    assert asyncio.run(main()) == 10
    assert sorted((a.limit, a.threshold) for a in got) == [("rpd", 80), ("rpd", 100)]
