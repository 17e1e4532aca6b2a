"""Many processes, two accounts of one org, one real Redis (and the real Cluster): the org's
daily cap and its pooled credits admit exactly their limit in total, never more and never less,
while an account of another org keeps all of its own.

Built like ``test_redis_concurrency``: separate processes (``multiprocessing``), each with its
own ``Limiter`` and connection, released together by a barrier, on a frozen clock so that the
exact totals are known in advance. Every decision spans the account's slot, the org's and the
global one: on Cluster three calls of the ordered reserve-then-release protocol, the account's
undone to the unit when the org's slot denies.
"""

from __future__ import annotations

import multiprocessing
import traceback
from typing import Any

import pytest
from conftest import storage_url
from test_redis_concurrency import FROZEN
from workers import run_workers

import quota

WORKERS = 8
ROUNDS = 30  # acquires per worker and plan: 8 x 30 = 240 attempts against an org's 100
LIMIT = 100
ACCOUNTS = ("acme-1", "acme-2")
CATALOG: dict[str, Any] = {
    "name": "org-hammer",
    "groups": ["org"],
    "meters": {"names": ["requests", "credits"]},
    "plans": {
        "cap": {
            "limits": [
                {"name": "acct_day", "meter": "requests", "rate": f"{10 * LIMIT}/day"},
                {"name": "org_day", "meter": "requests", "algorithm": "calendar",
                 "rate": f"{LIMIT}/day", "scope": "org"},
                {"name": "all_day", "meter": "requests", "rate": f"{10 * LIMIT}/day",
                 "scope": "global"},
            ]
        },
        "pool": {
            "limits": [
                {"name": "acct_credits", "meter": "credits", "algorithm": "fixed_window",
                 "rate": f"{10 * LIMIT}/day"},
                {"name": "org_pool", "meter": "credits", "algorithm": "balance",
                 "grant": LIMIT, "scope": "org"},
            ]
        },
    },
}  # fmt: skip
COSTS = {"cap": {"requests": 1}, "pool": {"credits": 1}}


def frozen() -> float:
    return FROZEN


def principal(plan: str, account: str, org: str = "acme") -> quota.Principal:
    return quota.Principal(account=account, plan=plan, groups={"org": org})


def hammer(url: str, index: int, barrier: Any, results: multiprocessing.Queue[Any]) -> None:
    """One worker: ROUNDS acquires on both plans, interleaved, as one of the org's two
    accounts; a request id on every other round (the record path), none otherwise."""
    try:
        account = ACCOUNTS[index % 2]
        with quota.Limiter(quota.Catalog.load(CATALOG), url, clock=frozen) as limiter:
            limiter.peek(principal("cap", account))  # connect (and load the script) first
            barrier.wait(timeout=30)
            admitted = dict.fromkeys(COSTS, 0)
            for i in range(ROUNDS):
                for plan, cost in COSTS.items():
                    rid = f"w{index}-{i}-{plan}" if (i + index // 2) % 2 else None
                    d = limiter.acquire(principal(plan, account), cost, request_id=rid)
                    admitted[plan] += d.allowed
        results.put((index, admitted, None))
    except BaseException:
        results.put((index, None, traceback.format_exc()))


@pytest.mark.parametrize("engine", ["redis", "cluster"])
def test_processes_of_two_accounts_admit_exactly_the_orgs_limits(
    request: pytest.FixtureRequest, engine: str
) -> None:
    url = storage_url(request, engine)
    replies = run_workers(hammer, lambda i: (url, i), WORKERS)
    errors = [err for _, _, err in replies if err]
    assert not errors, "\n".join(errors)

    totals = {plan: sum(counts[plan] for _, counts, _ in replies) for plan in COSTS}
    assert totals == dict.fromkeys(COSTS, LIMIT), totals
    by_account = {
        (account, plan): sum(c[plan] for i, c, _ in replies if ACCOUNTS[i % 2] == account)
        for account in ACCOUNTS
        for plan in COSTS
    }
    assert all(by_account.values()), by_account  # both accounts really drew on the org

    # No lost charge: each account's own limit carries exactly what it was admitted (the
    # org's denials undone to the unit on Cluster), the org is spent to zero, and an account
    # of another org has everything.
    with quota.Limiter(quota.Catalog.load(CATALOG), url, clock=frozen) as limiter:
        for account in ACCOUNTS:
            cap = {s.name: s.remaining for s in limiter.peek(principal("cap", account))}
            assert cap == {
                "acct_day": 10 * LIMIT - by_account[(account, "cap")],
                "org_day": 0,
                "all_day": 9 * LIMIT,
            }
            pool = {s.name: s.remaining for s in limiter.peek(principal("pool", account))}
            assert pool == {"acct_credits": 10 * LIMIT - by_account[(account, "pool")],
                            "org_pool": 0}  # fmt: skip
            for plan, cost in COSTS.items():
                assert not limiter.acquire(principal(plan, account), cost).allowed
        other = principal("cap", "beta-1", "beta")
        assert {s.name: s.remaining for s in limiter.peek(other)}["org_day"] == LIMIT
        assert limiter.acquire(other, COSTS["cap"]).allowed
        assert limiter.acquire(principal("pool", "beta-1", "beta"), COSTS["pool"]).allowed
