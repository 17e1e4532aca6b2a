"""Many processes, one account, one real Redis (and the real Cluster): every algorithm admits
exactly its limit in total, never more (no over-admission) and never less (no lost charge).

The workers are separate processes (``multiprocessing``), each with its own ``Limiter`` and
connection, released together by a barrier. Their clock is frozen, so nothing refills or
expires during the run and the exact total is known in advance: ``limit``.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import traceback
from typing import Any

import pytest
from conftest import storage_url
from workers import run_workers

import quota

WORKERS = 8
ROUNDS = 30  # acquires per worker and plan: 8 x 30 = 240 attempts against a limit of 100
LIMIT = 100
#: The workers' frozen clock (epoch seconds): 2026-03-10 12:00 UTC, inside the trial's span.
FROZEN = dt.datetime(2026, 3, 10, 12, tzinfo=dt.timezone.utc).timestamp()
CYCLE_START = dt.datetime(2026, 3, 9, tzinfo=dt.timezone.utc)


def _one(name: str, algorithm: str, **extra: Any) -> dict[str, Any]:
    """A plan of one limit of ``LIMIT`` on ``requests`` (day-long, so nothing refills)."""
    limit: dict[str, Any] = {"name": name, "meter": "requests", "algorithm": algorithm}
    return {"limits": [limit | extra]}


#: One plan per algorithm; limit names differ so that one account can be on all of them.
CATALOG: dict[str, Any] = {
    "name": "hammer",
    "meters": {"names": ["requests"]},
    "plans": {
        "sliding_window": _one("sw", "sliding_window", rate=f"{LIMIT}/day"),
        "token_bucket": _one("tb", "token_bucket", rate=f"{LIMIT}/day"),
        "fixed_window": _one("fw", "fixed_window", rate=f"{LIMIT}/day"),
        "calendar": _one("cal", "calendar", rate=f"{LIMIT}/day"),
        "allowance": _one("trial", "allowance", limit=LIMIT, period="7 days"),
        "balance": _one("wallet", "balance", grant=LIMIT),
        "concurrency": _one("inflight", "concurrency", limit=LIMIT, lease="1 hour"),
        # A decision over two slots: on Cluster the ordered reserve-then-release protocol
        # (the account's slot admits, then the global slot denies, then the account is undone).
        "global": {
            "limits": [
                {"name": "acct_day", "meter": "requests", "rate": f"{10 * LIMIT}/day"},
                {"name": "all_day", "meter": "requests", "rate": f"{LIMIT}/day", "scope": "global"},
            ]
        },
    },
}
PLANS = list(CATALOG["plans"])


def frozen() -> float:
    return FROZEN


def principal(plan: str, account: str) -> quota.Principal:
    return quota.Principal(account=account, plan=plan, cycle_start=CYCLE_START)


def hammer(
    url: str, account: str, index: int, barrier: Any, results: multiprocessing.Queue[Any]
) -> None:
    """One worker process: ROUNDS acquires of one request on every plan, interleaved; odd
    workers give a request id (the record path), even ones none (the recordless path)."""
    try:
        catalog = quota.Catalog.load(CATALOG)
        with quota.Limiter(catalog, url, clock=frozen) as limiter:
            limiter.peek(principal(PLANS[0], account))  # connect (and load the script) first
            barrier.wait(timeout=30)
            admitted = dict.fromkeys(PLANS, 0)
            for i in range(ROUNDS):
                for plan in PLANS:
                    rid = f"w{index}-{i}-{plan}" if index % 2 else None
                    d = limiter.acquire(principal(plan, account), {"requests": 1}, request_id=rid)
                    admitted[plan] += d.allowed
        results.put((index, admitted, None))
    except BaseException:
        results.put((index, None, traceback.format_exc()))


@pytest.mark.parametrize("engine", ["redis", "cluster"])
def test_processes_hammering_one_account_admit_exactly_the_limit(
    request: pytest.FixtureRequest, engine: str
) -> None:
    url = storage_url(request, engine)
    account = f"acct_hammer_{engine}"
    replies = run_workers(hammer, lambda i: (url, account, i), WORKERS)
    errors = [err for _, _, err in replies if err]
    assert not errors, "\n".join(errors)

    totals = {plan: sum(counts[plan] for _, counts, _ in replies) for plan in PLANS}
    assert totals == dict.fromkeys(PLANS, LIMIT), totals
    # Every worker got some share: the run really interleaved (not one process doing it all).
    assert sum(1 for _, counts, _ in replies if counts["sliding_window"]) > 1

    # No lost charge: every limit is spent to exactly zero, nothing more is admitted, and the
    # global plan's account limit carries exactly the admitted hundred (the denied decisions
    # undone to the unit on Cluster).
    catalog = quota.Catalog.load(CATALOG)
    with quota.Limiter(catalog, url, clock=frozen) as limiter:
        for plan in PLANS:
            who = principal(plan, account)
            left = {s.name: s.remaining for s in limiter.peek(who)}
            if plan == "global":
                assert left == {"acct_day": 9 * LIMIT, "all_day": 0}
            else:
                assert list(left.values()) == [0], (plan, left)
            assert not limiter.acquire(who, {"requests": 1}).allowed
