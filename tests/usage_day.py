"""A scripted day of Zylo traffic and the ledger of what its decisions charged.

The ledger is kept from the decisions alone (admitted estimates, settlements, releases; denials
charge nothing), so comparing it with ``limiter.usage()`` checks the history against what the
limiter really decided.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from conftest import FakeClock

import quota

ZYLO = quota.Catalog.load("zylo")
PLANS = ["basic", "go", "pro", "mega", "enterprise"]


@dataclass
class Ledger:
    """Per local date, per meter: what the decisions of the script charged."""

    catalog: quota.Catalog
    days: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    admitted: int = 0
    denied: int = 0
    released: int = 0

    def charge(self, date: str, d: quota.Decision, cost: dict[str, int]) -> dict[str, int]:
        """Book an acquire; returns its estimate per meter (empty when denied)."""
        if not d.allowed:
            self.denied += 1
            return {}
        self.admitted += 1
        estimate = self.catalog.canonical(cost)
        self.days[date].update(estimate)
        return estimate

    def settle(self, date: str, estimate: dict[str, int], actual: dict[str, int]) -> None:
        for meter, amount in self.catalog.canonical(actual).items():
            self.days[date][meter] += amount - estimate.get(meter, 0)

    def release(self, date: str, estimate: dict[str, int]) -> None:
        self.released += 1
        self.days[date].subtract(estimate)

    def totals(self, date: str, meters: list[str]) -> dict[str, int]:
        return {m: self.days[date][m] for m in meters}


def chat(plan: str, *, search: int = 0, code: int = 0) -> tuple[dict[str, int], str]:
    """A chat completion's estimate (500 prompt + 1000 reserve) and its model."""
    if plan == "basic":
        return {"requests": 1, "tokens": 1500}, "gpt-4o-mini"
    cost = {"requests": 1, "tokens": 1500, "credits": ZYLO.price("gpt-5.5", 500, 1000)}
    if search:
        cost["google_search"] = search
    if code:
        cost["code_execution"] = code
    return cost, "gpt-5.5"


def used(plan: str, completion: int) -> dict[str, int]:
    """What a call really used: 500 prompt tokens + ``completion``."""
    out = {"tokens": 500 + completion}
    if plan != "basic":
        out["credits"] = ZYLO.price("gpt-5.5", 500, completion)
    return out


def play_day(
    lim: quota.Limiter, clock: FakeClock, plan: str, who: quota.Principal, ledger: Ledger
) -> None:
    """One day of traffic from the clock's current time (a midnight): chats settled to their
    real usage, failed calls released, bursts over the minute limits, tools, a call over the
    daily token cap, one over the credits, one for a model the plan may not call, and a call
    made just before midnight and settled after it."""
    today = clock.now.date().isoformat()

    def call(cost: dict[str, int], model: str, *, completion: int | None = 300) -> None:
        d = lim.acquire(who, cost, model=model)
        estimate = ledger.charge(today, d, cost)
        if not d.allowed:
            return
        if completion is None:
            assert lim.release(d)
            ledger.release(today, estimate)
        else:
            assert lim.settle(d, used(plan, completion))
            ledger.settle(today, estimate, used(plan, completion))

    clock.advance(8 * 3600)
    for i in range(30):  # a steady morning: one call a minute, every fifth one fails
        cost, model = chat(plan)
        call(cost, model, completion=None if i % 5 == 4 else 100 + 10 * i)
        clock.advance(60)
    for _ in range(14):  # a burst: basic's rpm denies 4 of these, tools deny past 10/minute
        tools = {} if plan == "basic" else {"search": 1}
        if plan in ("pro", "mega", "enterprise"):
            tools["code"] = 2
        cost, model = chat(plan, **tools)
        call(cost, model, completion=50)
        clock.advance(1)
    clock.advance(120)
    for _ in range(12):  # web extraction: 10/minute per key on every plan
        d = lim.acquire(who, {"requests": 1, "web_extract": 1})
        ledger.charge(today, d, {"requests": 1, "web_extract": 1})
        clock.advance(2)
    clock.advance(120)
    # Never admitted: over the day's tokens (or the credits), over the credits, a premium model
    # on basic (403 before anything is charged).
    big = {"requests": 1, "tokens": 6_000_000}
    ledger.charge(today, lim.acquire(who, big, model=chat(plan)[1]), big)
    if plan != "basic":
        broke = {"requests": 1, "credits": 10**12}
        ledger.charge(today, lim.acquire(who, broke, model="gpt-5.5"), broke)
    else:
        d = lim.acquire(who, {"requests": 1}, model="gpt-5.5")
        assert d.status == 403
        ledger.charge(today, d, {"requests": 1})
    # Just before midnight: charged today, settled tomorrow, still counted today.
    midnight = dt.datetime.combine(
        clock.now.date() + dt.timedelta(days=1), dt.time(), dt.timezone.utc
    )
    clock.set(midnight - dt.timedelta(seconds=2))
    cost, model = chat(plan)
    d = lim.acquire(who, cost, model=model, request_id=f"late-{today}")
    estimate = ledger.charge(today, d, cost)
    clock.set(midnight + dt.timedelta(seconds=3))
    assert lim.settle(f"late-{today}", used(plan, 700), who=who)
    ledger.settle(today, estimate, used(plan, 700))
    clock.set(midnight)
