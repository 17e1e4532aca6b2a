"""Groups: limits counted per org or team (``scope = "org"``), across every account of it.

On the memory engine, a real Redis and a real Cluster: two accounts of one org share the org's
daily cap and its pooled credits exactly, an account of another org is unaffected; a decision
charges every level all or nothing (an org-level denial charges the account nothing and the
other way round), with and without request ids (on Cluster, the account's call undone when the
org's slot denies); settling refunds the pool; reset and top-up reach the group's slot; on one
server an account + org + global decision is one call; a principal outside the group gets a
PrincipalError; the block cache and the fallback engine count an org once for its members; a
model of the three levels (hypothesis). The many-process run is in
``test_groups_processes.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from conftest import FakeClock, storage_url
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import free_port
from test_redis_functions import Counting

import quota
from quota.keys import group_slot

ACCOUNT_DAY, ORG_DAY, POOL = 5, 8, 100
CATALOG = quota.Catalog.load(
    {
        "name": "orgs",
        "groups": ["org", "team"],
        "meters": {"names": ["requests", "credits"]},
        "plans": {
            "member": {
                "limits": [
                    {"name": "rpd", "meter": "requests", "algorithm": "calendar",
                     "rate": f"{ACCOUNT_DAY}/day"},
                    {"name": "org_rpd", "meter": "requests", "algorithm": "calendar",
                     "rate": f"{ORG_DAY}/day", "scope": "org"},
                    {"name": "all", "meter": "requests", "rate": "1000/day", "scope": "global"},
                    {"name": "pool", "meter": "credits", "algorithm": "balance",
                     "grant": POOL, "scope": "org"},
                ]
            },
            "wallet": {
                "limits": [
                    {"name": "wallet", "meter": "credits", "algorithm": "balance", "grant": 30},
                    {"name": "pool", "meter": "credits", "algorithm": "balance",
                     "grant": POOL, "scope": "org"},
                    {"name": "team_rpm", "meter": "requests", "rate": "3/minute",
                     "scope": "team"},
                ]
            },
        },
    }
)  # fmt: skip


def member(account: str, org: str = "acme", plan: str = "member", **groups: str) -> Any:
    return quota.Principal(account=account, plan=plan, groups={"org": org, **groups})


def left(lim: quota.Limiter, who: quota.Principal) -> dict[str, int]:
    return {s.name: s.remaining for s in lim.peek(who)}


def test_two_accounts_share_the_org_cap_and_other_orgs_are_untouched(
    storage: str, clock: FakeClock
) -> None:
    with quota.Limiter(CATALOG, storage, clock=clock) as lim:
        a1, a2, b1 = member("a1"), member("a2"), member("b1", "beta")
        assert [lim.acquire(a1, {"requests": 1}).allowed for _ in range(6)] == [True] * 5 + [False]
        got = [lim.acquire(a2, {"requests": 1}, request_id=f"r{i}") for i in range(4)]
        assert [d.allowed for d in got] == [True, True, True, False]
        assert got[-1].denied_by == "org_rpd" and got[-1].status == 429
        assert all(lim.acquire(b1, {"requests": 1}).allowed for _ in range(ACCOUNT_DAY))
        assert left(lim, a2) == {"rpd": 2, "org_rpd": 0, "all": 1000 - 13, "pool": POOL}
        assert left(lim, b1)["org_rpd"] == ORG_DAY - ACCOUNT_DAY
        states = {s.name: s for s in got[0].states}
        assert states["org_rpd"].scope == "org" and states["rpd"].scope == "account"
        clock.advance(86_400)  # a new day for every level
        assert left(lim, a1) == {"rpd": 5, "org_rpd": 8, "all": 1000, "pool": POOL}


def test_the_org_pool_drains_exactly_settles_and_tops_up(storage: str, clock: FakeClock) -> None:
    with quota.Limiter(CATALOG, storage, clock=clock) as lim:
        a1, a2, b1 = member("a1"), member("a2"), member("b1", "beta")
        held = lim.acquire(a1, {"credits": 60}, request_id="c1")
        assert held.allowed
        short = lim.acquire(a2, {"credits": 50})
        assert not short.allowed and short.denied_by == "pool" and short.status == 402
        assert lim.settle("c1", {"credits": 10}, who=a1)  # 50 back to the pool
        spent = lim.acquire(a2, {"credits": 50})
        assert spent.allowed and left(lim, a1)["pool"] == 40
        assert lim.release(spent)
        assert left(lim, a2)["pool"] == 90
        assert lim.top_up(a2, "pool", 15) == 105  # a group's pool: by its limit's name
        assert left(lim, a1)["pool"] == 105 and left(lim, b1)["pool"] == POOL
        assert not lim.acquire(a1, {"credits": 106}).allowed
        assert lim.acquire(a1, {"credits": 105}).allowed
        assert left(lim, a2)["pool"] == 0 and left(lim, b1)["pool"] == POOL


@pytest.mark.parametrize("rid", [None, "x"])
def test_every_level_is_charged_all_or_nothing(storage: str, clock: FakeClock, rid: Any) -> None:
    """The org denies: the account's limits stay as they were; the account denies (its
    wallet, its team's rate): the org's pool is not charged."""
    with quota.Limiter(CATALOG, storage, clock=clock) as lim:
        a1, a2 = member("a1"), member("a2")
        for i in range(ORG_DAY):
            assert lim.acquire(a1 if i < 4 else a2, {"requests": 1}).allowed
        a3 = member("a3")
        for i in range(3):
            d = lim.acquire(a3, {"requests": 1}, request_id=rid and f"{rid}{i}")
            assert d.denied_by == "org_rpd"
        assert left(lim, a3) == {"rpd": ACCOUNT_DAY, "org_rpd": 0, "all": 1000 - 8, "pool": POOL}
        w = member("w1", plan="wallet", team="ml")
        d = lim.acquire(w, {"credits": 31, "requests": 1}, request_id=rid)
        assert d.denied_by == "wallet"
        assert left(lim, w) == {"wallet": 30, "pool": POOL, "team_rpm": 3}
        for i in range(3):
            assert lim.acquire(member(f"t{i}", plan="wallet", team="ml"), {"requests": 1})
        d = lim.acquire(w, {"credits": 20, "requests": 1}, request_id=rid and f"{rid}t")
        assert d.denied_by == "team_rpm"
        assert left(lim, w) == {"wallet": 30, "pool": POOL, "team_rpm": 0}
        assert lim.acquire(member("w2", plan="wallet", team="ops"), {"credits": 20, "requests": 1})
        assert left(lim, w) == {"wallet": 30, "pool": POOL - 20, "team_rpm": 0}


def test_a_principal_outside_the_group_gets_a_principal_error(clock: FakeClock) -> None:
    with quota.Limiter(CATALOG, "memory://", clock=clock) as lim:
        lone = quota.Principal(account="lone", plan="member")
        with pytest.raises(quota.PrincipalError, match=r"'org_rpd'.*no 'org'") as caught:
            lim.acquire(lone, {"requests": 1})
        err = caught.value
        assert (err.field, err.plan, err.limit) == ("groups.org", "member", "org_rpd")
        assert isinstance(err, quota.CostError)
        with pytest.raises(quota.PrincipalError, match="'pool'"):
            lim.top_up(lone, "pool", 5)
        assert {s.name for s in lim.peek(lone)} == {"rpd", "all"}  # what applies to it
        no_team = member("w", plan="wallet")
        with pytest.raises(quota.PrincipalError, match=r"'team_rpm'.*no 'team'"):
            lim.acquire(no_team, {"requests": 1})
        assert lim.acquire(no_team, {"credits": 5}).allowed  # a cost the team limit ignores


def test_reset_reaches_the_group_only_when_asked_and_its_pool_only_with_balances(
    storage: str, clock: FakeClock
) -> None:
    with quota.Limiter(CATALOG, storage, clock=clock) as lim:
        a1, a2 = member("a1"), member("a2")
        for who in (a1, a2, a2):
            assert lim.acquire(who, {"requests": 1, "credits": 10}).allowed
        lim.reset(a1)  # a1's own limits only: what the org shares stays
        assert left(lim, a1)["rpd"] == ACCOUNT_DAY
        assert left(lim, a2) == {"rpd": 3, "org_rpd": ORG_DAY - 3, "all": 997, "pool": POOL - 30}
        lim.reset(a1, include_groups=True)
        assert left(lim, a2) == {"rpd": 3, "org_rpd": ORG_DAY, "all": 997, "pool": POOL - 30}
        lim.reset(a1, include_balance=True, include_groups=True)
        assert left(lim, a2)["pool"] == POOL


def test_the_block_cache_remembers_an_org_denial_for_every_member(clock: FakeClock) -> None:
    with quota.Limiter(CATALOG, "memory://", clock=clock) as lim:
        for i in range(ORG_DAY):
            assert lim.acquire(member(f"a{i}"), {"requests": 1}).allowed
        assert lim.acquire(member("a1"), {"requests": 1}).source == "engine"
        d = lim.acquire(member("a9"), {"requests": 1})  # another member: the org's block
        assert (d.allowed, d.denied_by, d.source) == (False, "org_rpd", "cache")
        assert lim.acquire(member("b1", "beta"), {"requests": 1}).allowed  # not beta's
        lim.reset(member("a1"), include_groups=True)  # the org's windows: its block forgotten
        assert lim.acquire(member("a9"), {"requests": 1}).allowed


def test_while_the_store_fails_the_local_policy_counts_the_org_in_process(
    clock: FakeClock,
) -> None:
    """``on_error = "local"``: the fallback engine counts the org's cap across its members,
    and denies the pool (balances fail closed) for every one of them."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with quota.Limiter(CATALOG, dead, clock=clock, on_error="local") as lim:
        got = [lim.acquire(member(f"a{i % 3}"), {"requests": 1}) for i in range(ORG_DAY + 2)]
        assert [d.allowed for d in got] == [True] * ORG_DAY + [False, False]
        assert {d.source for d in got} == {"local"} and got[-1].denied_by == "org_rpd"
        assert lim.acquire(member("b1", "beta"), {"requests": 1}).allowed


def test_one_server_decides_account_org_and_global_in_one_call(
    redis_port: int, clock: FakeClock
) -> None:
    client = redis.Redis(port=redis_port, decode_responses=True)
    backend = Counting(client, prefix="grp1")
    with quota.Limiter(CATALOG, backend, clock=clock) as lim:
        a1 = member("a1")
        lim.acquire(a1, {"requests": 0, "credits": 0})  # loads the script and the library
        for _ in range(3):
            sent = dict(backend.sent)
            assert lim.acquire(a1, {"requests": 1, "credits": 5}).allowed
            assert sum(backend.sent.values()) - sum(sent.values()) == 1
        sent = dict(backend.sent)
        assert lim.acquire(a1, {"requests": 1, "credits": 5}, request_id="one").allowed
        assert lim.settle("one", {"credits": 1}, who=a1)  # the record names the org's slot
        assert sum(backend.sent.values()) - sum(sent.values()) == 3
        assert left(lim, a1) == {"rpd": 1, "org_rpd": 4, "all": 996, "pool": POOL - 16}
        slot = group_slot("org", "acme", lim.planner.secret)
        assert client.hget(f"grp1:{{{slot}}}", "org_rpd") is not None
        assert not any("acme" in key for key in client.scan_iter("grp1:*"))


@pytest.mark.parametrize("engine", ["redis", "cluster"])
def test_async_limiters_share_the_org_exactly(request: pytest.FixtureRequest, engine: str) -> None:
    url = storage_url(request, engine)

    async def run() -> list[bool]:
        async with quota.AsyncLimiter(CATALOG, url, clock=FakeClock()) as lim:
            who = [member(f"a{i}") for i in range(4)]
            got = await asyncio.gather(
                *(lim.acquire(who[i % 4], {"requests": 1, "credits": 7}) for i in range(20))
            )
            return [d.allowed for d in got]

    assert sum(asyncio.run(run())) == ORG_DAY


costs = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 40), st.booleans()),
    max_size=30,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(costs)
def test_decisions_match_a_model_of_three_levels(steps: list[tuple[int, int, int, bool]]) -> None:
    """Accounts 0-2 in acme, 3 in beta: a request is admitted iff the account's day, its
    org's day and its org's pool all hold it; then all three are charged."""
    clock = FakeClock()
    lim = quota.Limiter(CATALOG, "memory://", clock=clock)
    used = [0] * 4
    org = {"acme": [0, POOL], "beta": [0, POOL]}
    for i, (who, n, credits, rid) in enumerate(steps):
        name = "beta" if who == 3 else "acme"
        cost = {"requests": n, "credits": credits}
        d = lim.acquire(member(f"m{who}", name), cost, request_id=str(i) if rid else None)
        fits = used[who] + n <= ACCOUNT_DAY and org[name][0] + n <= ORG_DAY
        fits = fits and credits <= org[name][1]
        assert d.allowed == fits
        if fits:
            used[who] += n
            org[name][0] += n
            org[name][1] -= credits
    for who in range(4):
        name = "beta" if who == 3 else "acme"
        seen = left(lim, member(f"m{who}", name))
        assert seen["rpd"] == ACCOUNT_DAY - used[who]
        assert (seen["org_rpd"], seen["pool"]) == (ORG_DAY - org[name][0], org[name][1])
