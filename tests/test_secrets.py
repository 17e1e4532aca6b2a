"""Secrets: no raw API key, account id or request id anywhere in Redis after a busy run.

Many accounts on every Zylo plan, several API keys each (the per-key search, web_extract and
code_execution budgets), reservations under request ids settled, released or left open,
balances topped up: then every key of the whole keyspace (every node of a Cluster) and every
value in it (hash fields and values, strings) is read and searched for any raw identifier or
any 12-character piece of one. (tests/test_redis_differential.py checks a small random
keyspace the same way; this is the thorough one.)
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
import redis
from conftest import FakeClock, storage_url

import quota

ZYLO = quota.Catalog.load("zylo")
PLANS = ["basic", "go", "pro", "mega", "enterprise"]


def _secret_ids(n: int, kind: str) -> list[str]:
    # Distinctive and free of shared pieces, so that a hit can only be a leak.
    return [f"{kind}-{uuid.uuid4().hex}" for _ in range(n)]


def _values(client: redis.Redis, key: str) -> list[str]:
    kind = client.type(key)
    if kind == "hash":
        return [x for pair in client.hgetall(key).items() for x in pair]
    if kind == "string":
        return [str(client.get(key))]
    if kind == "none":  # expired since the scan
        return []
    raise AssertionError(f"unexpected {kind} key {key!r}")


def _pieces(raw: str, width: int = 12) -> set[str]:
    return {raw[i : i + width] for i in range(len(raw) - width + 1)}


def play(limiter: quota.Limiter, clock: FakeClock) -> tuple[list[str], int]:
    """A busy run; returns every raw identifier it used and the number of decisions."""
    rng = random.Random(6)
    accounts = _secret_ids(40, "acct")
    keys = {a: _secret_ids(3, "sk") for a in accounts}
    used: list[str] = [*accounts, *(k for ks in keys.values() for k in ks)]
    decisions = 0
    for step in range(600):
        account = rng.choice(accounts)
        plan = PLANS[accounts.index(account) % len(PLANS)]
        who = quota.Principal(account=account, plan=plan, key=rng.choice(keys[account]))
        cost = {"requests": 1, "tokens": rng.randint(10, 3000), "web_extract": rng.randint(0, 1)}
        features = None
        if plan != "basic":
            cost["credits"] = ZYLO.price("gpt-5.5", 100, 500)
            cost["google_search"] = rng.randint(0, 1)
            features = {"tools", "google_search"}
            if plan != "go":
                cost["code_execution"] = rng.randint(0, 1)
                features.add("code_execution")
        rid = f"req-{uuid.uuid4().hex}" if step % 3 else None
        if rid:
            used.append(rid)
        d = limiter.acquire(who, cost, request_id=rid, model="llama-3.1-8b", features=features)
        decisions += 1
        if d.allowed and step % 5 == 1:
            limiter.settle(d, {"tokens": 5})
        elif d.allowed and step % 5 == 2:
            limiter.release(d)
        if plan != "basic" and step % 50 == 0:
            limiter.top_up(who, "credits", 1000)
        clock.advance(0.2)
    return used, decisions


@pytest.mark.parametrize("engine", ["redis", "cluster"])
def test_no_raw_identifier_anywhere_in_the_keyspace(
    request: pytest.FixtureRequest, engine: str, clock: FakeClock
) -> None:
    url = storage_url(request, engine)
    with quota.Limiter(ZYLO, url, clock=clock) as limiter:
        used, decisions = play(limiter, clock)
        backend: Any = limiter.backend
        prefix = backend.layout.prefix
    ports = (
        request.getfixturevalue("redis_cluster_ports")
        if engine == "cluster"
        else [request.getfixturevalue("redis_port")]
    )
    pieces = set().union(*(_pieces(raw) for raw in used))
    assert _pieces(used[0]) & pieces  # the check itself can see a leak
    seen = records = per_key = 0
    for port in ports:
        client = redis.Redis(port=port, decode_responses=True)
        for key in client.scan_iter(count=1000):  # the whole keyspace, not just our prefix
            if not key.startswith(f"{prefix}:"):
                continue
            seen += 1
            records += ":r:" in key
            values = _values(client, key)
            per_key += sum(1 for v in values if "/" in v and v.split("/")[0] in ("search",))
            text = "\n".join([key, *values])
            leaked = _pieces(text) & pieces
            assert not leaked, (key, sorted(leaked)[:3])
    assert decisions == 600
    assert seen > 40  # the accounts' hashes, balances and records were all read
    assert records > 50  # reservation records under request ids were among them
    assert per_key > 0  # and per-key budget fields, named by the key's keyed hash
