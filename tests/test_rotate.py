"""Rotating the hashing secret keeps every budget: memory, a real Redis and a real Cluster.

Accounts on several Zylo plans spend requests, tokens, credits and their per-key search and
code-execution budgets, with reservations left open under request ids; after
``rotate_secret``, a limiter on the new secret sees exactly the states the old one saw, can
settle the open reservations, and the old names hold nothing.
"""

from __future__ import annotations

import pytest
from conftest import FakeClock

import quota
from quota.backends.redis.codec import decode_record, encode_record
from quota.keys import secret_from_env
from quota.rotate import rotate_secret

ZYLO = quota.Catalog.load("zylo")
OLD, NEW = b"old-secret-0123456789", b"new-secret-9876543210"


def principals(tag: str) -> list[quota.Principal]:
    out = []
    for i, plan in enumerate(["basic", "go", "pro", "mega"]):
        for key in ("a", "b"):
            out.append(quota.Principal(account=f"{tag}{i}", plan=plan, key=f"sk-{tag}{i}{key}"))
    return out


def spend(
    limiter: quota.Limiter, who: list[quota.Principal], clock: FakeClock
) -> tuple[list[str], list[str]]:
    """Busy accounts; returns the request ids used and those left open."""
    open_ids: list[str] = []
    used: list[str] = []
    for n, p in enumerate(who):
        paid = p.plan != "basic"
        for j in range(4 + n % 4):
            cost = {"requests": 1, "tokens": 100 * (j + 1), "web_extract": 1}
            if paid:
                cost |= {"credits": 5000, "google_search": 1}
            features = {"tools", "google_search"} if paid else None
            if p.plan in ("pro", "mega"):
                cost["code_execution"] = 1
                features = {"tools", "google_search", "code_execution"}
            rid = f"{p.key}-{j}" if j % 2 else None
            d = limiter.acquire(p, cost, request_id=rid, features=features)
            assert d.allowed, d
            if rid:
                used.append(rid)
            if rid and j % 4 == 1:
                open_ids.append(rid)
            elif rid:
                limiter.settle(d, {"tokens": 10})
            clock.advance(0.5)
        if paid:
            limiter.top_up(p, "credits", 77)
    return used, open_ids


def states(limiter: quota.Limiter, who: list[quota.Principal]) -> list[list[quota.LimitState]]:
    return [limiter.peek(p) for p in who]


@pytest.fixture
def pair(storage: str, clock: FakeClock) -> tuple[quota.Limiter, quota.Limiter]:
    old = quota.Limiter(ZYLO, storage, clock=clock, secret=OLD, on_error="raise")
    # memory:// state lives in its engine: the new limiter shares the old one's
    store = old.backend if storage == "memory://" else storage
    return old, quota.Limiter(ZYLO, store, clock=clock, secret=NEW, on_error="raise")


def test_rotation_keeps_every_budget(
    pair: tuple[quota.Limiter, quota.Limiter], clock: FakeClock, storage: str
) -> None:
    old, new = pair
    who = principals(f"rot-{storage[:5]}-")
    used, open_ids = spend(old, who, clock)
    before = states(old, who)
    fresh = states(new, who)
    assert fresh != before  # a new secret names other keys: nothing is seen before rotating
    accounts = [(p.account, [q.key for q in who if q.account == p.account]) for p in who[::2]]
    report = rotate_secret(old if storage == "memory://" else storage, OLD, NEW, accounts,
                           catalog=ZYLO)  # fmt: skip
    assert report.accounts == 4 and report.records == len(used) and not report.dropped
    assert states(new, who) == before  # budgets after rotation equal budgets before
    assert states(old, who) == fresh  # and the old names hold nothing any more
    p = who[2]  # "go" account, key a: settle an open reservation under the new secret
    rid = next(r for r in open_ids if r.startswith(f"{p.key}-"))
    tokens = {s.name: s.remaining for s in new.peek(p)}["tpd"]
    assert new.settle(rid, {"tokens": 1}, who=p)
    assert {s.name: s.remaining for s in new.peek(p)}["tpd"] > tokens
    again = rotate_secret(new if storage == "memory://" else storage, OLD, NEW, accounts,
                          catalog=ZYLO)  # fmt: skip
    assert again.accounts == 0  # nothing left to move: repeating is harmless
    assert states(new, who) == states(new, who)


def test_unlisted_keys_lose_only_their_per_key_budgets(
    pair: tuple[quota.Limiter, quota.Limiter], clock: FakeClock, storage: str
) -> None:
    old, new = pair
    who = principals(f"unl-{storage[:5]}-")[2:4]  # one "go" account with keys a and b
    spend(old, who, clock)
    before = states(old, who)
    target = old if storage == "memory://" else storage
    report = rotate_secret(target, OLD, NEW, [(who[0].account, [who[0].key])], catalog=ZYLO)
    assert report.accounts == 1 and report.dropped  # key b's per-key fields
    after = states(new, who)
    assert after[0] == before[0]  # the listed key: everything kept
    by_name = {s.name: s for s in after[1]}
    assert by_name["rpd"] == {s.name: s for s in before[1]}["rpd"]  # account budgets kept
    assert by_name["search"].remaining == by_name["search"].limit  # key b's budget: afresh


def test_rotation_needs_a_catalog_and_memory_needs_its_limiter() -> None:
    with pytest.raises(quota.ConfigError, match="catalog"):
        rotate_secret("redis://127.0.0.1:1/0", OLD, NEW, [])
    with pytest.raises(quota.ConfigError, match="limiter"):
        rotate_secret("memory://", OLD, NEW, [], catalog=ZYLO)
    with pytest.raises(quota.ConfigError, match="URL"):
        rotate_secret(quota.AsyncLimiter(ZYLO, "redis://127.0.0.1:1/0"), OLD, NEW, [])


def test_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUOTA_SECRET", "s" * 32)
    assert secret_from_env() == b"s" * 32
    monkeypatch.setenv("QUOTA_SECRET", "short")
    with pytest.raises(quota.ConfigError, match="too short"):
        secret_from_env()
    monkeypatch.delenv("QUOTA_SECRET")
    with pytest.raises(quota.ConfigError, match="QUOTA_SECRET"):
        secret_from_env()
    long = quota.Limiter(ZYLO, "memory://", secret=b"x" * 200)  # longer than BLAKE2b's key
    assert long.acquire(quota.Principal(account="a", plan="go", key="k"), {"search": 1})


def test_rotation_keeps_usage_history(
    pair: tuple[quota.Limiter, quota.Limiter], clock: FakeClock, storage: str
) -> None:
    old, new = pair
    who = principals(f"his-{storage[:5]}-")[2:4]  # one "go" account with keys a and b
    spend(old, who, clock)
    before = [old.usage(p, 2) for p in who]
    assert any(day["requests"] for day in before[0].values())
    target = old if storage == "memory://" else storage
    rotate_secret(target, OLD, NEW, [(who[0].account, [p.key for p in who])], catalog=ZYLO)
    assert [new.usage(p, 2) for p in who] == before


@pytest.mark.parametrize(
    "raw",
    [
        "5000,0,",  # settled, no charge
        "5000,1,1#",  # linked, no undo image
        "9,1,;1,rpm,s,60000,4,1,requests,9,60000,-1;2,credits,b,,4,5,credits,95,0,-1",
        "9,1,1;1,tpd/Ab-_9,w,86400000,0,100,tokens,900,5,-1#1|tpd/Ab-_9|0,3|0,103!2|c||95",
    ],
)
def test_reservation_records_decode_and_encode_exactly(raw: str) -> None:
    record = decode_record(raw)
    assert encode_record(record) == raw
    renamed = record.renamed(lambda name: name.replace("/Ab-_9", "/Zz"))
    assert encode_record(renamed) == raw.replace("/Ab-_9", "/Zz")
    assert decode_record(encode_record(renamed)) == renamed


ORGS = quota.Catalog.load(
    {
        "name": "orgs",
        "groups": ["org"],
        "plans": {
            "seat": {
                "limits": [
                    {"name": "rpd", "meter": "requests", "rate": "100/day"},
                    {"name": "org_rpd", "meter": "requests", "rate": "50/day", "scope": "org"},
                    {"name": "pool", "meter": "credits", "algorithm": "balance",
                     "grant": 1000, "scope": "org"},
                ]
            }
        },
    }
)  # fmt: skip


def test_rotation_moves_the_groups_it_is_given(storage: str, clock: FakeClock) -> None:
    """An org's shared cap and pooled credits move with ``groups=``; without it they would
    start afresh under the new secret."""
    old = quota.Limiter(ORGS, storage, clock=clock, secret=OLD, on_error="raise")
    store = old.backend if storage == "memory://" else storage
    new = quota.Limiter(ORGS, store, clock=clock, secret=NEW, on_error="raise")
    tag = f"grp-{storage[:5]}"
    who = [quota.Principal(account=f"{tag}{i}", plan="seat", groups={"org": tag}) for i in (1, 2)]
    for p in (*who, who[0], who[0]):
        assert old.acquire(p, {"requests": 1, "credits": 100}, request_id=None).allowed
    before = [old.peek(p) for p in who]
    target = old if storage == "memory://" else storage
    report = rotate_secret(target, OLD, NEW, [(p.account, []) for p in who], catalog=ORGS,
                           groups=[("org", tag)])  # fmt: skip
    assert report.accounts == 3  # two accounts and their org
    assert [new.peek(p) for p in who] == before
    assert {s.name: s.remaining for s in new.peek(who[1])} == {
        "rpd": 99,
        "org_rpd": 46,
        "pool": 600,
    }
