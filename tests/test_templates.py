"""The hot path of issue 14: templates (an acquire planned once per window), the memory
engine's in-place states, and the sliding window's working form.

Everything here is checked against the slow definitions: a template's ops against ops planned
from scratch, the fast path's validation against a fresh limiter's, the memory engine against
a fold of the pure ``quota.algorithms.decide`` over flat states."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from conftest import START, FakeClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import quota
from quota import planner as planner_module
from quota import templates
from quota.algorithms import (
    ALGORITHMS,
    Charge,
    Log,
    SlidingWindow,
    State,
    decide,
    settle_all,
)
from quota.algorithms.base import Outcome
from quota.backends.base import Op, Verdict
from quota.backends.memory import MemoryBackend
from quota.backends.planned import PlannedOps, Targets
from quota.templates import Prepared

CATALOG: dict[str, Any] = {
    "name": "tpl",
    "meters": {"names": ["requests", "tokens", "tool"], "aliases": {"tool_x": "tool"}},
    "usage": {"history_days": 3},
    "plans": {
        "p": {
            "timezone": "America/New_York",
            "limits": [
                {"name": "rpm", "meter": "requests", "rate": "5/minute", "precision": 3},
                {"name": "rpd", "meter": "requests", "algorithm": "calendar", "rate": "50/day"},
                {
                    "name": "fw",
                    "meter": "tokens",
                    "algorithm": "fixed_window",
                    "rate": "900/10 minutes",
                },
                {"name": "tool", "meter": "tool", "rate": "4/minute", "scope": "key"},
            ],
        }
    },
}
WHO = quota.Principal(account="acct", plan="p", key="sk-1")


def limiter(clock: FakeClock) -> quota.Limiter:
    return quota.Limiter(quota.Catalog.load(CATALOG), "memory://", clock=clock)


def prepare(lim: quota.Limiter, cost: dict[str, Any], **kw: Any) -> Prepared:
    prep = lim.planner.prepare(
        WHO, cost, lim._now(), kw.get("request_id"), kw.get("model"), kw.get("features")
    )
    assert isinstance(prep, Prepared)
    return prep


def from_scratch(lim: quota.Limiter, prep: Prepared) -> list[Op]:
    """The ops of ``prep`` planned one by one, as peeks and top-ups plan theirs."""
    plan = lim.catalog.plan(WHO.plan)
    return [
        lim.planner.op(WHO, plan, r.limit, prep.now, op.cost)
        for r, op in zip(prep.rules, prep.ops, strict=True)
    ]


# -- templates -----------------------------------------------------------------------------------


def test_a_repeated_cost_reuses_its_ops_and_a_new_one_is_spliced() -> None:
    clock = FakeClock()
    lim = limiter(clock)
    first = prepare(lim, {"requests": 1, "tokens": 40})
    clock.advance(1)
    again = prepare(lim, {"requests": 1, "tokens": 40})
    assert again.ops is first.ops and again.template is first.template
    other = prepare(lim, {"requests": 1, "tokens": 41})
    assert other.template is first.template and other.ops is not first.ops
    for prep in (first, again, other):
        assert list(prep.ops) == from_scratch(lim, prep)
        assert isinstance(prep.ops, PlannedOps)
        assert prep.ops.costs == tuple(op.cost for op in prep.ops)


def test_a_template_holds_until_the_earliest_window_boundary() -> None:
    utc = dt.timezone.utc
    clock = FakeClock(dt.datetime(2026, 3, 8, 4, 59, tzinfo=utc))  # New York: 23:59, DST night
    lim = limiter(clock)
    first = prepare(lim, {"requests": 1, "tokens": 1})
    tpl = first.template
    assert tpl is not None
    # The 10-minute fixed window started at 04:50; it and the New York day (the calendar limit
    # and the usage history) end at 05:00.
    assert tpl.since == round(dt.datetime(2026, 3, 8, 4, 50, tzinfo=utc).timestamp() * 1000)
    assert tpl.until == round(dt.datetime(2026, 3, 8, 5, 0, tzinfo=utc).timestamp() * 1000)
    clock.ms = tpl.until - 1
    assert prepare(lim, {"requests": 1, "tokens": 1}).template is tpl
    clock.ms = tpl.until
    later = prepare(lim, {"requests": 1, "tokens": 1})
    assert later.template is not tpl
    assert list(later.ops) == from_scratch(lim, later)
    clock.ms = tpl.since - 1  # a clock that went back: the window before
    earlier = prepare(lim, {"requests": 1, "tokens": 1})
    assert earlier.template is not tpl and list(earlier.ops) == from_scratch(lim, earlier)


def test_decisions_across_window_boundaries_equal_planning_from_scratch() -> None:
    clocks = FakeClock(START), FakeClock(START)
    fast, slow = limiter(clocks[0]), limiter(clocks[1])
    for step in range(400):
        cost = {"requests": 1, "tokens": 7 + step % 3, "tool_x": step % 2}
        slow.planner._templates.clear()  # every acquire planned from scratch
        assert fast.acquire(WHO, cost) == slow.acquire(WHO, cost)
        for clock in clocks:
            clock.advance(7 * 60 + 7 if step % 5 else 1)  # crosses windows and days at odd times
    assert fast.usage(WHO, days=3) == slow.usage(WHO, days=3)
    assert fast.backend.dump() == slow.backend.dump()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("cost", "options"),
    [
        ({"requests": 1.0}, {}),
        ({"requests": True}, {}),
        ({"requests": -1}, {}),
        ({"requests": 2**53}, {}),
        ({"requests": "1"}, {}),
        ({"nope": 1}, {}),
        ({"requests": 1}, {"request_id": ""}),
        ({"requests": 1}, {"request_id": 7}),
        ({"requests": 1}, {"model": 3}),
        ({"requests": 1}, {"features": "tool"}),
    ],
)
def test_the_fast_path_refuses_what_a_first_call_refuses(
    cost: dict[str, Any], options: dict[str, Any]
) -> None:
    clock = FakeClock()
    warm = limiter(clock)
    assert warm.acquire(WHO, {"requests": 1})  # a template (and its cost vector) exists
    assert warm.acquire(WHO, {"requests": 2})
    with pytest.raises(quota.CostError) as fresh:
        limiter(clock).acquire(WHO, cost, **options)
    with pytest.raises(quota.CostError) as repeat:
        warm.acquire(WHO, cost, **options)
    assert str(repeat.value) == str(fresh.value)


def test_aliases_that_add_up_are_summed_on_every_call() -> None:
    clock = FakeClock()
    lim = limiter(clock)
    for n in (1, 1, 2, 0):
        assert lim.acquire(WHO, {"tool": n, "tool_x": 1}).state("tool").remaining == 4 - n - 1
        clock.advance(61)  # the minute's window has passed
    prep = prepare(lim, {"tool": 2, "tool_x": 1})
    assert prep.template is not None and prep.template.positions is None
    assert [op.cost for op in prep.ops] == [3, 3]  # the tool limit, the tool history


def test_templates_and_splices_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planner_module, "TEMPLATES", 8)
    monkeypatch.setattr(templates, "SPLICES", 3)
    clock = FakeClock()
    lim = limiter(clock)
    for i in range(50):
        who = quota.Principal(account=f"a{i}", plan="p", key="k")
        assert lim.acquire(who, {"requests": 0, "tokens": i % 7})
        assert lim.acquire(WHO, {"requests": 0, "tokens": i % 7})
    assert len(lim.planner._templates) <= 8
    tpl = prepare(lim, {"requests": 0, "tokens": 0}).template
    assert tpl is not None and len(tpl._planned) <= 3


def test_shadow_limits_fall_back_to_plain_ops() -> None:
    cat = {"plans": {"d": {"limits": [
        {"name": "rpm", "meter": "requests", "rate": "100/minute"},
        {"name": "new_rpm", "meter": "requests", "rate": "1/minute", "shadow": True},
    ]}}}  # fmt: skip
    clock = FakeClock()
    lim = quota.Limiter(quota.Catalog.load(cat), "memory://", clock=clock)
    who = quota.Principal(account="a", plan="d")
    assert lim.acquire(who, {"requests": 1}).shadow_denied == ()
    d = lim.acquire(who, {"requests": 1})
    assert d.allowed and d.shadow_denied == ("new_rpm",) and d.state("rpm").remaining == 98


# -- the memory engine against the pure decision ---------------------------------------------

OPS = [
    ("s", "sw", "requests", "sliding_window", (6, 1_000, 3)),
    ("s", "tb", "tokens", "token_bucket", (3, 100, 9)),
    ("s", "fw", "requests", "fixed_window", None),  # params follow the clock
    ("s", "bal", "credits", "balance", (20,)),
    ("s", "conc", "requests", "concurrency", (2, 700)),
    ("g", "sw2", "tokens", "sliding_window", (30, 2_000, 2)),
    ("s", "@tokens", "tokens", "history", None),
]


def ops_at(now: int, costs: list[int], pick: list[int]) -> list[Op]:
    out = []
    for i in pick:
        slot, field, meter, algo, params = OPS[i]
        if algo == "fixed_window":
            start = now // 1_500 * 1_500
            params = (7, start, start + 1_500)
        elif algo == "history":
            day = now // 3_000 * 3_000
            params = (day, day + 3_000, day - 6_000)
        out.append(Op(slot, field, meter, algo, params, costs[i]))
    return out


def planned(ops: list[Op]) -> PlannedOps:
    return PlannedOps.build(Targets(tuple(ops)), tuple(op.cost for op in ops))


class Reference:
    """Flat states folded through ``decide`` and ``settle_all``: the definition. ``params``:
    what each state was last written with (its expiry depends on them)."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, str], State] = {}
        self.params: dict[tuple[str, str], tuple[str, tuple[int, ...]]] = {}

    def acquire(self, now: int, ops: list[Op]) -> tuple[bool, list[Outcome]]:
        allowed, outcomes, new = decide([self.state(op) for op in ops], now, ops)
        if allowed:
            self.write(ops, new)
        return allowed, outcomes

    def settle(self, now: int, charges: list[Charge], actual: dict[str, int]) -> None:
        new = settle_all([self.state(c) for c in charges], now, charges, actual)
        self.write(charges, new)

    def write(self, ops: list[Op] | list[Charge], states: list[State]) -> None:
        for op, state in zip(ops, states, strict=True):
            self.states[(op.slot, op.field)] = state
            self.params[(op.slot, op.field)] = (op.algorithm, op.params)

    def peek(self, now: int, ops: list[Op]) -> list[Outcome]:
        return [
            ALGORITHMS[op.algorithm].acquire(self.state(op), now, op.params, op.cost)[1]
            for op in ops
        ]

    def state(self, op: Op | Charge) -> State:
        return self.states.get((op.slot, op.field), ())

    def check(self, engine: MemoryBackend, now: int) -> None:
        """The engine holds what the reference holds, but for what has expired."""
        dumped = engine.dump()
        assert set(dumped) <= set(self.states)
        for key, state in self.states.items():
            if key in dumped:
                assert dumped[key] == state, key
            elif state:
                algorithm, params = self.params[key]
                expiry = ALGORITHMS[algorithm].expiry(state, params)
                assert expiry is not None and expiry <= now, key


step = st.tuples(
    # Clock steps. Never back: the engine sweeps what expires, and a state swept at t is no
    # state at t - 1 either, while the reference still holds it (the old engine did the same).
    st.integers(0, 900),
    st.lists(st.integers(0, 4), min_size=len(OPS), max_size=len(OPS)),  # costs
    st.lists(st.sampled_from(range(len(OPS))), min_size=1, max_size=4, unique=True),
    st.booleans(),  # as planned ops (a template's) or as a plain list
    st.none() | st.integers(0, 6),  # settle right after, to this actual amount
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=40))
def test_the_memory_engine_decides_like_the_pure_functions(steps: list[Any]) -> None:
    engine, ref = MemoryBackend(), Reference()
    now = 1_000_000
    for move, costs, pick, as_planned, actual in steps:
        now += move
        ops = ops_at(now, costs, pick)
        verdict = engine.acquire(now, "s", planned(ops) if as_planned else ops, None, 1_000)
        allowed, outcomes = ref.acquire(now, ops)
        assert verdict == Verdict(allowed, tuple(outcomes), tuple(op.field for op in ops))
        if allowed and actual is not None:
            charges = [
                Charge(op.slot, op.field, op.meter, op.algorithm, op.params, out.anchor, op.cost)
                for op, out in zip(ops, outcomes, strict=True)
            ]
            engine.settle_charges(now, charges, {op.meter: actual for op in ops})
            ref.settle(now, charges, {op.meter: actual for op in ops})
        assert engine.peek(now, ops) == ref.peek(now, ops)
        ref.check(engine, now)


def test_a_denial_changes_nothing_even_in_place() -> None:
    engine = MemoryBackend()
    t0 = 5_000_000
    ops = [Op("s", "sw", "requests", "sliding_window", (10, 60_000, 2), 1) for _ in range(1)]
    for i in range(3):  # three entries at precision 2: merged in place
        assert engine.acquire(t0 + i, "s", planned(ops), None, 1_000).allowed
    before = engine.dump()
    deny = [*ops, Op("s", "fw", "requests", "fixed_window", (0, t0, t0 + 9_000), 1)]
    verdict = engine.acquire(t0 + 5, "s", planned(deny), None, 1_000)
    assert not verdict.allowed and verdict.outcomes[0].remaining == 7
    assert engine.dump() == before == {("s", "sw"): (t0 + 1, 2, t0 + 2, 1)}


# -- the sliding window's working form -------------------------------------------------------


@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 3)), max_size=60),
    st.integers(1, 5),
)
def test_the_log_keeps_its_sums_and_gaps(moves: list[tuple[int, int]], precision: int) -> None:
    log, flat, now = Log(), (), 10_000
    p = (10**6, 200, precision)
    for step_ms, cost in moves:
        now += step_ms
        out = SlidingWindow.check(log, now, p, cost)
        SlidingWindow.commit(log, now, p, cost)
        flat, expected = SlidingWindow.acquire(flat, now, p, cost)
        assert out == expected and log.state() == flat
        assert log.used == sum(log.amounts)
        if log.gaps is not None:
            assert log.gaps == [b - a for a, b in zip(log.times, log.times[1:], strict=False)]
        assert Log(flat).state() == flat
