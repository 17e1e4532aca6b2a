"""Differential property test: one random operation sequence through every engine.

The memory engine runs the pure Python functions of ``quota.algorithms``; a real Redis, a real
Cluster of three masters and fakeredis run their Lua transcription. With explicit clocks (moving
forward, standing still, stepping back a little), several principals and plans, all seven
algorithms, per-key and global scopes and limits of groups (an org's daily cap and pooled
credits, a team's token rate, shared by accounts of several plans), they must give identical
decisions, settle results, peeks and top-ups, and store identical states.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import redis
from conftest import START, FakeClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import quota
from quota.backends.memory import MemoryBackend
from quota.backends.redis import RedisBackend

DIFF: dict[str, Any] = {
    "name": "diff",
    "meters": {"names": ["requests", "tokens", "credits", "tool"], "aliases": {"tool_x": "tool"}},
    "usage": {"history_days": 2},  # the history algorithm on every meter; 2-day steps prune
    "groups": ["org", "team"],
    "plans": {
        "a": {
            "timezone": "Asia/Kathmandu",
            "limits": [
                {"name": "rpm", "meter": "requests", "rate": "4/10 seconds", "precision": 3},
                {
                    "name": "tpm",
                    "meter": "tokens",
                    "algorithm": "token_bucket",
                    "rate": "300/minute",
                    "burst": 200,
                },
                {"name": "day", "meter": "requests", "algorithm": "calendar", "rate": "30/day"},
                {
                    "name": "fw",
                    "meter": "requests",
                    "algorithm": "fixed_window",
                    "rate": "6/20 seconds",
                    "offset": 5,
                },
                {"name": "plat", "meter": "tokens", "rate": "400/minute", "scope": "global"},
                {"name": "tool", "meter": "tool", "rate": "3/10 seconds", "scope": "key"},
                {"name": "wallet", "meter": "credits", "algorithm": "balance", "grant": 500},
                {
                    "name": "org_day",
                    "meter": "requests",
                    "algorithm": "calendar",
                    "rate": "20/day",
                    "scope": "org",
                },
                {
                    "name": "pool",
                    "meter": "credits",
                    "algorithm": "balance",
                    "grant": 300,
                    "scope": "org",
                },
                {
                    "name": "conc",
                    "meter": "requests",
                    "algorithm": "concurrency",
                    "limit": 2,
                    "lease": 15,
                },
            ],
        },
        "b": {
            "limits": [
                {
                    "name": "trial",
                    "meter": "requests",
                    "algorithm": "allowance",
                    "limit": 12,
                    "period": "1 day",
                },
                {
                    "name": "month",
                    "meter": "tokens",
                    "algorithm": "calendar",
                    "rate": "900/month",
                    "anchor": "cycle",
                },
                {
                    "name": "tpm",
                    "meter": "tokens",
                    "algorithm": "token_bucket",
                    "rate": "300/minute",
                    "burst": 200,
                },
                {"name": "plat", "meter": "tokens", "rate": "400/minute", "scope": "global"},
                {"name": "wallet", "meter": "credits", "algorithm": "balance", "grant": 100},
                {
                    "name": "pool",
                    "meter": "credits",
                    "algorithm": "balance",
                    "grant": 300,
                    "scope": "org",
                },
                {
                    "name": "team_tpm",
                    "meter": "tokens",
                    "rate": "500/minute",
                    "precision": 4,
                    "scope": "team",
                },
            ],
        },
    },
}
CATALOG = quota.Catalog.load(DIFF)
ALGORITHMS = {lim.name: lim.algorithm for p in CATALOG.plans.values() for lim in p.limits}
ALGORITHMS |= {f"@{meter}": "history" for meter in CATALOG.meter_names}  # usage history
CYCLE = START - dt.timedelta(hours=20)
ACME, BETA, TEAM = {"org": "org-acme"}, {"org": "org-beta"}, {"team": "team-ml"}
PRINCIPALS = [
    quota.Principal(account="acct-A", plan="a", key="sk-1", groups=ACME),
    quota.Principal(account="acct-A", plan="a", key="sk-2", groups=ACME),
    quota.Principal(
        account="acct-{B}", plan="b", key="sk-1", cycle_start=CYCLE, groups=ACME | TEAM
    ),
    quota.Principal(account="acct-C", plan="a", key="sk-3", groups=BETA),
    quota.Principal(account="acct-D", plan="b", cycle_start=CYCLE, groups=BETA | TEAM),
]

who = st.integers(0, len(PRINCIPALS) - 1)
rid = st.none() | st.sampled_from(["r1", "r2", "r3", "r4"])
cost = st.fixed_dictionaries(
    {"requests": st.integers(0, 2)},
    optional={
        "tokens": st.integers(0, 150),
        "credits": st.integers(0, 60),
        "tool": st.integers(0, 2),
        "tool_x": st.integers(0, 1),
    },
)
actual = st.fixed_dictionaries(
    {}, optional={"tokens": st.integers(0, 300), "credits": st.integers(0, 120)}
)
step = st.one_of(
    st.tuples(st.just("advance"), st.integers(-800, 0) | st.integers(0, 20_000)),
    st.tuples(st.just("advance"), st.integers(20_000, 2 * 86_400_000)),
    st.tuples(st.just("acquire"), who, cost, rid),
    st.tuples(st.just("acquire"), who, cost, rid),
    st.tuples(st.just("settle"), st.integers(0, 30), actual),
    st.tuples(st.just("release"), st.integers(0, 30)),
    st.tuples(st.just("settle_id"), who, st.sampled_from(["r1", "r2", "r3"]), actual),
    st.tuples(st.just("peek"), who),
    st.tuples(st.just("usage"), who),
    st.tuples(st.just("reset"), who, st.booleans()),
    st.tuples(st.just("top_up"), who, st.integers(1, 400), st.sampled_from(["credits", "pool"])),
)


def play(lim: quota.Limiter, clock: FakeClock, steps: list[tuple[Any, ...]]) -> list[Any]:
    """Run ``steps``; every result in a comparable form (errors by type and text)."""
    out: list[Any] = []
    decisions: list[quota.Decision] = []
    for s in steps:
        try:
            if s[0] == "advance":
                clock.advance_ms(s[1])
                continue
            if s[0] == "acquire":
                d = lim.acquire(PRINCIPALS[s[1]], s[2], request_id=s[3])
                decisions.append(d)
                out.append(d)
            elif s[0] == "settle":
                out.append(lim.settle(decisions[s[1]], s[2]) if s[1] < len(decisions) else None)
            elif s[0] == "release":
                out.append(lim.release(decisions[s[1]]) if s[1] < len(decisions) else None)
            elif s[0] == "settle_id":
                out.append(lim.settle(s[2], s[3], who=PRINCIPALS[s[1]]))
            elif s[0] == "peek":
                out.append(lim.peek(PRINCIPALS[s[1]]))
            elif s[0] == "usage":
                out.append(lim.usage(PRINCIPALS[s[1]], days=2))
            elif s[0] == "reset":
                out.append(lim.reset(PRINCIPALS[s[1]], include_balance=s[2]))
            else:  # a meter's first balance, or a balance by name (an org's pool)
                out.append(lim.top_up(PRINCIPALS[s[1]], s[3] if s[3:] else "credits", s[2]))
        except quota.QuotaError as exc:
            out.append((type(exc).__name__, str(exc)))
    return out


class Engines:
    """Long-lived clients; each example gets fresh, empty namespaces on them."""

    def __init__(self, redis_port: int, cluster_ports: list[int]) -> None:
        self.single = redis.Redis(port=redis_port, decode_responses=True)
        self.cluster = redis.RedisCluster(
            host="127.0.0.1", port=cluster_ports[0], decode_responses=True
        )
        self.names = itertools.count()

    def fresh(self) -> dict[str, Any]:
        n = next(self.names)
        fake = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
        return {
            "memory": MemoryBackend(),
            "redis": RedisBackend(self.single, prefix=f"d{n}"),
            "cluster": RedisBackend(self.cluster, prefix=f"d{n}", cluster=True),
            "fakeredis": RedisBackend(fake),
        }


@pytest.fixture(scope="module")
def engines(redis_port: int, redis_cluster_ports: list[int]) -> Iterator[Engines]:
    e = Engines(redis_port, redis_cluster_ports)
    yield e
    e.single.close()
    e.cluster.close()


def check_same(steps: list[tuple[Any, ...]], engines: Engines) -> dict[str, Any]:
    backends = engines.fresh()
    results, clocks = {}, {}
    for name, backend in backends.items():
        clocks[name] = FakeClock()
        results[name] = play(
            quota.Limiter(CATALOG, backend, clock=clocks[name]), clocks[name], steps
        )
    for name in backends:
        assert results[name] == results["memory"], name
    reference = backends["memory"].dump()
    for name, backend in backends.items():
        if name == "memory":
            continue
        stored = backend.dump(ALGORITHMS)
        # Redis deletes a field when a write leaves it empty or expired, as the memory engine
        # does; only the memory engine also sweeps untouched expired state, so Redis may hold
        # more (garbage that every algorithm reads as empty), never less or different.
        assert set(reference) <= set(stored), name
        assert {k: stored[k] for k in reference} == reference, name
    _check_keyspace(backends["redis"])
    return results


def _check_keyspace(backend: RedisBackend) -> None:
    """No raw account id or API key in any key or value; a TTL on every key but balances."""
    raw = {p.account for p in PRINCIPALS} | {p.key for p in PRINCIPALS if p.key}
    raw |= {name for p in PRINCIPALS for name in p.groups.values()}
    client = backend.client
    for key in client.scan_iter(match=f"{backend.layout.prefix}:*", count=1000):
        kind = client.type(key)
        values = list(client.hgetall(key).items()) if kind == "hash" else [client.get(key)]
        text = key + repr(values)
        assert not any(r in text for r in raw), key
        assert key.endswith(":p") or client.pttl(key) > 0, key


@settings(
    max_examples=70,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(step, min_size=1, max_size=45))
def test_every_engine_gives_identical_decisions_and_states(
    engines: Engines, steps: list[tuple[Any, ...]]
) -> None:
    check_same(steps, engines)


def test_a_scripted_run_exercises_every_outcome(engines: Engines) -> None:
    """A fixed sequence that reaches 429, 402, a replay, merges and the global slot."""
    steps: list[tuple[Any, ...]] = []
    for i in range(7):
        steps += [("acquire", 0, {"requests": 1, "tokens": 90, "credits": 40, "tool": 1}, None)]
        steps += [("acquire", 3, {"requests": 1, "tokens": 120}, f"r{i % 3}")]
        steps += [("settle", 2 * i, {"tokens": 30, "credits": 90}), ("advance", 1_700)]
    steps += [("release", 1), ("peek", 0), ("peek", 3), ("top_up", 0, 300), ("peek", 0)]
    steps += [
        ("acquire", 2, {"requests": 1, "credits": 60}, None),
        ("settle", 14, {"credits": 130}),
    ]
    steps += [("acquire", 2, {"requests": 1, "credits": 1}, None), ("top_up", 2, 50)]
    steps += [("acquire", 2, {"requests": 1, "tokens": 50}, None) for _ in range(14)]
    steps += [("advance", 86_400_000), ("acquire", 2, {"requests": 1}, None), ("peek", 2)]
    results = check_same(steps, engines)["memory"]
    statuses = {r.status for r in results if isinstance(r, quota.Decision)}
    assert {200, 402, 429} <= statuses
    assert any(isinstance(r, quota.Decision) and r.replayed for r in results)
    assert any(isinstance(r, quota.Decision) and r.denied_by == "plat" for r in results)
