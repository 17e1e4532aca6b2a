"""Property tests of the pure step functions in ``quota.algorithms`` against brute-force oracles.

Every clock here is an explicit integer (epoch ms): traffic moves it forward by random steps and,
where a test says so, occasionally a few ms backwards (servers whose clocks disagree slightly).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from math import gcd

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracles import ContinuousBucket, ExactLog, FixedWindows, Leases, OneTimeBudget

from quota.algorithms import (
    ALGORITHMS,
    MAX_SAFE,
    Allowance,
    Charge,
    Outcome,
    Params,
    SlidingWindow,
    State,
    Step,
    TokenBucket,
    WindowCounter,
    decide,
    settle_all,
)

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(SETTINGS, max_examples=60)

T0 = st.integers(0, 4_000_000_000_000)  # epoch ms, up to the year 2096
DAY = 86_400_000
SW = SlidingWindow()
TB = TokenBucket()
WC = WindowCounter()
AL = Allowance()


# -- helpers --------------------------------------------------------------------------------------


def live_log(state: State, now: int, span: int) -> list[tuple[int, int]]:
    pairs = list(zip(state[0::2], state[1::2], strict=True))
    return [(t, a) for t, a in pairs if t + span > now]


def check_log(state: State, precision: int | None = None) -> None:
    """A log state: (t, a) pairs, t strictly ascending, every amount positive."""
    assert len(state) % 2 == 0
    times, amounts = state[0::2], state[1::2]
    assert all(a > 0 for a in amounts), state
    assert all(x < y for x, y in pairwise(times)), state
    if precision is not None:
        assert len(times) <= precision, state


def bucket_level(state: State, p: Params) -> tuple[int, int | None]:
    """(level in 1/period units, time) the state stores; a missing state is a full bucket."""
    return (p[2] * p[1], None) if not state else (state[0], state[1])


def reduce_rate(amount: int, period_ms: int, burst: int) -> Params:
    """The token bucket params as the planner builds them: amount/period reduced by their gcd."""
    g = gcd(amount, period_ms)
    return (amount // g, period_ms // g, burst)


def steps(max_step: int, back: int) -> st.SearchStrategy[int]:
    """Clock increments: mostly forward, and when ``back`` > 0 sometimes up to ``back`` ms back."""
    forward = st.one_of(st.integers(0, 2), st.integers(0, max_step), st.integers(0, max_step))
    if back == 0:
        return forward
    return st.one_of(forward, forward, st.integers(-back, -1))


# -- limits as the planner would present them -----------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One limit: its algorithm and how its params follow the clock (as the planner computes)."""

    algorithm: str
    base: tuple[int, ...]
    capacity: int | None  # the largest cost that can ever be admitted (None: a balance)
    scale: int  # a typical time scale (window, lease, refill) for clock steps

    def params(self, now: int) -> Params:
        a, b = self.algorithm, self.base
        if a == "token_bucket":
            return reduce_rate(*b)
        if a == "fixed_window":
            limit, period, offset = b
            start = (now - offset) // period * period + offset
            return (limit, start, start + period)
        if a == "calendar":
            # Windows of irregular lengths (like months) repeating from an origin.
            limit, origin, *lengths = b
            cycle = sum(lengths)
            q, r = divmod(now - origin, cycle)
            start = origin + q * cycle
            for n in lengths:
                if r < n:
                    return (limit, start, start + n)
                r -= n
                start += n
            raise AssertionError("unreachable")
        return b

    def window_end(self, wid: int) -> int:
        """For window counters: the end of the window starting at ``wid``."""
        return self.params(wid)[2]


#: The algorithms that limit: ``history`` never denies (tests/test_usage_history.py).
LIMITING = sorted(set(ALGORITHMS) - {"history"})


@st.composite
def specs(draw: st.DrawFn, t0: int, big: bool = False) -> Spec:
    algo = draw(st.sampled_from(LIMITING))
    n = draw(st.integers(1, 100_000_000 if big else 12))
    span = draw(st.integers(1, DAY) if big else st.integers(1, 60))
    if algo == "sliding_window":
        return Spec(algo, (n, span, draw(st.integers(1, 64 if big else 8))), n, span)
    if algo == "token_bucket":
        period = draw(st.sampled_from([1_000, 60_000, 3_600_000, DAY]) if big else st.just(span))
        burst = draw(st.integers(1, n if big else 3 * n))
        return Spec(algo, (n, period, burst), burst, period)
    if algo == "fixed_window":
        return Spec(algo, (n, span, draw(st.integers(0, span - 1))), n, span)
    if algo == "calendar":
        k = max(1, span // 2)
        lengths = draw(st.lists(st.integers(k, 2 * k - 1), min_size=1, max_size=4))
        origin = t0 - draw(st.integers(0, 3 * span))
        return Spec(algo, (n, origin, *lengths), n, 2 * k)
    if algo == "allowance":
        start = t0 + draw(st.integers(-span, 2 * span))
        return Spec(algo, (n, start, start + span), n, span)
    if algo == "balance":
        return Spec(algo, (draw(st.integers(0, 10**12 if big else 40)),), None, 10)
    return Spec(algo, (n, span), n, span)  # concurrency


@dataclass
class Event:
    """One operation of a simulated run: an acquire (``out`` set) or a settle."""

    now: int
    params: Params  # the params the operation ran with (a settle uses the charge's)
    before: State
    after: State
    cost: int = 0
    out: Outcome | None = None
    charge: tuple[int, Params, int] | None = None  # settle: (anchor, params, charged)
    actual: int = 0


# an op: (is_settle, clock step, cost, pick)
Ops = list[tuple[bool, int, int, int]]


@st.composite
def traffic(draw: st.DrawFn, spec: Spec, back: int, size: int = 40, big: bool = False) -> Ops:
    cap = spec.capacity if spec.capacity is not None else 40
    cost = st.integers(0, cap + 2) if not big else st.integers(0, cap)
    step = steps(2 * spec.scale, back)
    return draw(
        st.lists(
            st.tuples(st.integers(0, 4).map(lambda k: k == 0), step, cost, st.integers(0, 2**20)),
            max_size=size,
        )
    )


def simulate(
    spec: Spec, t0: int, ops: Ops, actual_of: Callable[[int, int], int] | None = None
) -> tuple[list[Event], State, int]:
    """Run ``ops`` through the algorithm; settles pick an open charge and an actual amount."""
    algo = ALGORITHMS[spec.algorithm]
    actual_of = actual_of or (lambda charged, pick: pick % (2 * charged + 3))
    state: State = ()
    now = t0
    pending: list[tuple[int, Params, int]] = []
    events = []
    for is_settle, dt, cost, pick in ops:
        now += dt
        if is_settle and pending:
            anchor, cp, charged = pending.pop(pick % len(pending))
            actual = actual_of(charged, pick)
            new = algo.settle(state, now, cp, anchor, charged, actual)
            events.append(Event(now, cp, state, new, charge=(anchor, cp, charged), actual=actual))
        else:
            p = spec.params(now)
            new, out = algo.acquire(state, now, p, cost)
            events.append(Event(now, p, state, new, cost, out))
            if out.allowed:
                pending.append((out.anchor, p, cost))
        state = new
    return events, state, now


# -- 1. the strict sliding window never over-admits ------------------------------------------------


@st.composite
def sliding_runs(draw: st.DrawFn, back: int) -> tuple[int, int, int, int, Ops]:
    limit = draw(st.integers(1, 12))
    window = draw(st.integers(1, 50))
    precision = draw(st.integers(1, 8))
    ops = draw(
        st.lists(
            st.tuples(
                st.integers(0, 5).map(lambda k: k == 0),
                steps(window, back),
                st.integers(0, limit + 1),
                st.integers(0, 2**20),
            ),
            max_size=80,
        )
    )
    return limit, window, precision, draw(T0), ops


def run_strict(limit: int, window: int, precision: int, t0: int, ops: Ops) -> None:
    p = (limit, window, precision)
    state: State = ()
    now = high = t0
    skew = 0  # how far the clock ever fell behind the latest time seen
    log: list[list[int]] = []  # admissions: [clock time, anchor, amount]
    pending: list[int] = []
    for is_settle, dt, cost, pick in ops:
        now += dt
        high = max(high, now)
        skew = max(skew, high - now)
        if is_settle and pending:
            i = pending.pop(pick % len(pending))
            _, anchor, charged = log[i]
            actual = pick % (charged + 1)  # refunds only: over-use may exceed the limit
            state = SW.settle(state, now, p, anchor, charged, actual)
            if anchor + window > now:
                log[i][2] = actual  # else settling is a no-op: the charge already expired
        else:
            new, out = SW.acquire(state, now, p, cost)
            if out.allowed:
                assert out.anchor >= now
                state = new
                log.append([now, out.anchor, cost])
                pending.append(len(log) - 1)
            else:
                assert new == state
        check_log(state, precision)
    # Every trailing window ending at an admission's logged time holds at most ``limit``. When the
    # clock went back by up to ``skew`` ms, another clock may already have forgotten entries that
    # are live for this one, so the guarantee covers windows of W - skew.
    span = window - skew
    for _, x, _ in log:
        assert sum(a for _, t, a in log if x - span < t <= x) <= limit, (x, log)
    if skew == 0:  # and on a monotone clock, in real time too
        for x, _, _ in log:
            assert sum(a for r, _, a in log if x - window < r <= x) <= limit, (x, log)


@SETTINGS
@given(sliding_runs(back=0))
def test_sliding_window_never_over_admits(run: tuple[int, int, int, int, Ops]) -> None:
    run_strict(*run)


@SETTINGS
@given(sliding_runs(back=4))
def test_sliding_window_never_over_admits_with_clock_skew(
    run: tuple[int, int, int, int, Ops],
) -> None:
    run_strict(*run)


def test_sliding_window_merging_example() -> None:
    # precision 2: the third entry forces a merge into the later time.
    p = (3, 100, 2)
    s, o = SW.acquire((), 0, p, 1)
    s, o = SW.acquire(s, 10, p, 1)
    s, o = SW.acquire(s, 50, p, 1)
    assert s == (10, 2, 50, 1)  # (0, 1) and (10, 1) were closest: merged into 10
    # At 100 the true log frees 1 (the entry at 0), the merged log frees nothing yet.
    s2, o = SW.acquire(s, 100, p, 1)
    assert not o.allowed and o.retry_after == 10
    s2, o = SW.acquire(s, 110, p, 2)
    assert o.allowed and s2 == (50, 1, 110, 2)


def test_sliding_window_refund_of_a_charge_another_clock_dropped() -> None:
    """A refund settled by a clock slightly behind must not land on a later entry when the
    charge it refunds was already dropped as expired by a clock ahead (found by the property
    test above: the refund used to be taken off the later entry, over-admitting by its size)."""
    p = (3, 30, 1)
    s, x = SW.acquire((), 0, p, 1)  # charge x: 1 at t=0
    s, _ = SW.acquire(s, 30, p, 3)  # a clock at 30: x has expired, 3 more fit
    assert s == (30, 3)
    s = SW.settle(s, 29, p, x.anchor, 1, 0)  # a clock at 29 refunds x
    assert s == (30, 3)
    _, o = SW.acquire(s, 29, p, 1)
    assert not o.allowed
    # Far from expiry a refund into a later entry is the charge's own (merged) amount.
    p = (3, 10_000, 1)
    s, x = SW.acquire((), 0, p, 2)
    s, _ = SW.acquire(s, 10, p, 1)
    assert s == (10, 3)  # x merged into the entry at 10
    assert SW.settle(s, 20, p, x.anchor, 2, 0) == (10, 1)


@SETTINGS
@given(st.integers(1, 10), st.integers(1, 40), T0, st.data())
def test_settling_an_expired_sliding_charge_changes_nothing(
    limit: int, window: int, t0: int, data: st.DataObject
) -> None:
    p = (limit, window, data.draw(st.integers(1, 8)))
    ops = data.draw(
        st.lists(st.tuples(steps(window, 0), st.integers(1, limit)), min_size=1, max_size=20)
    )
    state: State = ()
    now = t0
    charges = []
    for dt, cost in ops:
        now += dt
        new, out = SW.acquire(state, now, p, cost)
        if out.allowed:
            state = new
            charges.append((out.anchor, cost))
    later = now + data.draw(st.integers(0, window))
    for anchor, cost in charges:
        if anchor + window > later:
            continue
        for actual in (0, cost + data.draw(st.integers(1, 5))):
            settled = SW.settle(state, later, p, anchor, cost, actual)
            assert settled == tuple(x for e in live_log(state, later, window) for x in e)


# -- 2. exact while the log fits in the precision ------------------------------------------------


@st.composite
def exact_runs(draw: st.DrawFn) -> tuple[int, int, int, int, Ops]:
    limit = draw(st.integers(1, 10))
    window = draw(st.integers(1, 40))
    precision = draw(st.integers(limit, limit + 3))
    ops = draw(
        st.lists(
            st.tuples(
                st.integers(0, 4).map(lambda k: k == 0),
                steps(2 * window, 0),
                st.integers(0, limit + 2),
                st.integers(0, 2**20),
            ),
            max_size=60,
        )
    )
    return limit, window, precision, draw(T0), ops


@SETTINGS
@given(exact_runs())
def test_sliding_window_is_exact_within_precision(run: tuple[int, int, int, int, Ops]) -> None:
    limit, window, precision, now, ops = run
    p = (limit, window, precision)
    oracle = ExactLog(limit, window)
    state: State = ()
    pending: list[tuple[int, int, int]] = []  # (oracle id, anchor, charged)
    for is_settle, dt, cost, pick in ops:
        now += dt
        if is_settle and pending:
            cid, anchor, charged = pending.pop(pick % len(pending))
            actual = pick % (2 * limit + 1)  # refunds and over-use
            state = SW.settle(state, now, p, anchor, charged, actual)
            oracle.settle(now, cid, actual)
        else:
            expect_retry = oracle.earliest(now, cost)
            allowed, cid = oracle.acquire(now, cost)
            new, out = SW.acquire(state, now, p, cost)
            assert out.allowed == allowed
            assert out.remaining == oracle.remaining(now)
            assert out.reset_after == oracle.reset_after(now)
            if allowed:
                assert cid is not None
                assert out.retry_after == 0 and out.anchor == oracle.charges[cid].time
                state = new
                if cost > 0:  # a zero charge has no entry of its own to settle into
                    pending.append((cid, out.anchor, cost))
            else:
                assert new == state
                if cost > limit:
                    assert out.retry_after is None
                else:
                    assert expect_retry is not None and out.retry_after is not None
                    assert out.retry_after == expect_retry - now > 0
                    assert oracle.admits(now + out.retry_after, cost)
                    assert not oracle.admits(now + out.retry_after - 1, cost)
        check_log(state, precision)
        # The stored log is the oracle's log, entry for entry.
        by_time: dict[int, int] = {}
        for c in oracle.live(now):
            by_time[c.time] = by_time.get(c.time, 0) + c.amount
        assert live_log(state, now, window) == sorted((t, a) for t, a in by_time.items() if a)


# -- 3. the token bucket is the continuous bucket ------------------------------------------------


@st.composite
def bucket_runs(draw: st.DrawFn) -> tuple[int, int, int, int, Ops]:
    amount = draw(st.integers(1, 20))
    period = draw(st.one_of(st.integers(1, 20), st.integers(1, 2_000)))  # often dividing amount
    burst = draw(st.integers(1, 3 * amount))
    step = max(1, period * burst // amount)  # about the time to refill the bucket
    ops = draw(
        st.lists(
            st.tuples(
                st.integers(0, 4).map(lambda k: k == 0),
                steps(2 * step, draw(st.sampled_from([0, 5]))),
                st.integers(0, burst + 1),
                st.integers(0, 2**20),
            ),
            max_size=60,
        )
    )
    return amount, period, burst, draw(T0), ops


@SETTINGS
@given(bucket_runs())
def test_token_bucket_matches_continuous_refill(run: tuple[int, int, int, int, Ops]) -> None:
    amount, period_ms, burst, now, ops = run
    p = reduce_rate(amount, period_ms, burst)
    oracle = ContinuousBucket(amount, period_ms, burst)
    state: State = ()
    pending: list[int] = []
    for is_settle, dt, cost, pick in ops:
        now += dt
        if is_settle and pending:
            charged = pending.pop(pick % len(pending))
            actual = pick % (2 * burst + 1)
            state = TB.settle(state, now, p, 0, charged, actual)
            oracle.settle(now, charged, actual)
        else:
            expect = oracle.earliest(now, cost)
            allowed = oracle.acquire(now, cost)
            new, out = TB.acquire(state, now, p, cost)
            assert out.allowed == allowed
            assert out.remaining == oracle.remaining(now)
            assert out.reset_after == oracle.reset_after(now)
            if allowed:
                assert out.retry_after == 0
                state = new
                pending.append(cost)
            else:
                assert new == state
                if cost > burst:
                    assert out.retry_after is None and expect is None
                else:
                    assert expect is not None and out.retry_after == expect - now > 0
                    assert oracle.admits(now + out.retry_after, cost)
                    assert not oracle.admits(now + out.retry_after - 1, cost)
        # The stored level is the oracle's, in 1/period units; a full bucket stores nothing.
        level, last = bucket_level(state, p)
        assert level == oracle.level * p[1] and last == oracle.last


def test_token_bucket_example() -> None:
    p = reduce_rate(10, 60_000, 10)  # 10/minute: one token every 6 s
    assert p == (1, 6_000, 10)
    s, o = TB.acquire((), 0, p, 10)
    assert o.allowed and o.remaining == 0 and o.reset_after == 60_000
    _, o = TB.acquire(s, 0, p, 1)
    assert not o.allowed and o.retry_after == 6_000
    _, o = TB.acquire(s, 5_999, p, 1)
    assert not o.allowed and o.retry_after == 1
    s2, o = TB.acquire(s, 6_000, p, 1)
    assert o.allowed and s2 == (0, 6_000)
    _, o = TB.acquire(s, 0, p, 11)
    assert not o.allowed and o.retry_after is None


# -- 4. denials change nothing; decisions are all-or-nothing --------------------------------------


@st.composite
def runs(draw: st.DrawFn, back: int = 4, big: bool = False) -> tuple[Spec, int, Ops]:
    t0 = draw(T0)
    spec = draw(specs(t0, big))
    return spec, t0, draw(traffic(spec, back, big=big))


@SETTINGS
@given(runs())
def test_denial_leaves_state_unchanged(run: tuple[Spec, int, Ops]) -> None:
    events, _, _ = simulate(*run)
    for e in events:
        if e.out is not None and not e.out.allowed:
            assert e.after == e.before
            assert e.out.retry_after is None or e.out.retry_after > 0
            if run[0].capacity is not None and e.cost > run[0].capacity:
                assert e.out.retry_after is None
        if e.out is not None and e.out.allowed:
            assert e.out.retry_after == 0 and e.out.remaining >= 0


@SETTINGS
@given(runs(back=0))
def test_retry_after_is_exact_for_the_stored_state(run: tuple[Spec, int, Ops]) -> None:
    """A denied cost is admitted exactly ``retry_after`` ms later (absent other traffic)."""
    spec = run[0]
    algo = ALGORITHMS[spec.algorithm]
    for e in simulate(*run)[0]:
        if e.out is None or e.out.allowed or e.out.retry_after is None:
            continue
        later = e.now + e.out.retry_after
        assert algo.acquire(e.before, later, spec.params(later), e.cost)[1].allowed
        sooner = later - 1
        assert not algo.acquire(e.before, sooner, spec.params(sooner), e.cost)[1].allowed


@SETTINGS
@given(runs())
def test_expired_state_is_no_state(run: tuple[Spec, int, Ops]) -> None:
    """At and after ``expiry`` (computed as the engine does, with the params of the operation
    that wrote the state) the stored state decides exactly like no state: engines may drop it."""
    spec = run[0]
    algo = ALGORITHMS[spec.algorithm]
    for e in simulate(*run)[0]:
        if not e.after:
            continue
        expiry = algo.expiry(e.after, e.params)
        if expiry is None:
            continue
        for x in (expiry, expiry + 1, expiry + spec.scale):
            p = spec.params(x)
            for cost in (0, 1, spec.capacity or 1):
                s1, o1 = algo.acquire(e.after, x, p, cost)
                s2, o2 = algo.acquire((), x, p, cost)
                assert o1 == o2, (e, x)
                if o1.allowed:
                    assert s1 == s2


@st.composite
def decisions(draw: st.DrawFn) -> tuple[list[Spec], list[State], int, list[int]]:
    t0 = draw(T0)
    n = draw(st.integers(1, 4))
    specs_, states, nows = [], [], []
    for _ in range(n):
        spec = draw(specs(t0))
        _, state, now = simulate(spec, t0, draw(traffic(spec, 0, size=15)))
        specs_.append(spec)
        states.append(state)
        nows.append(now)
    now = max(nows) + draw(st.integers(0, 30))
    costs = [draw(st.integers(0, (s.capacity or 30) + 1)) for s in specs_]
    return specs_, states, now, costs


@SETTINGS
@given(decisions())
def test_decide_charges_all_or_nothing(d: tuple[list[Spec], list[State], int, list[int]]) -> None:
    specs_, states, now, costs = d
    steps_ = [Step(s.algorithm, s.params(now), c) for s, c in zip(specs_, costs, strict=True)]
    alone = [
        ALGORITHMS[s.algorithm].acquire(st_, now, s.params, s.cost)
        for st_, s in zip(states, steps_, strict=True)
    ]
    allowed, outcomes, new = decide(states, now, steps_)
    assert allowed == all(o.allowed for _, o in alone)
    if allowed:
        assert new == [s for s, _ in alone]
        assert outcomes == [o for _, o in alone]
    else:
        assert new == list(states)
        for (_, o), out, st_, s in zip(alone, outcomes, states, steps_, strict=True):
            if o.allowed:  # reported before the (undone) charge
                assert out == ALGORITHMS[s.algorithm].acquire(st_, now, s.params, 0)[1]
                assert out.remaining >= o.remaining
            else:
                assert out == o


# -- 5. settle and release conserve usage ---------------------------------------------------------


def usage(spec: Spec, state: State, now: int, p: Params) -> int:
    """What the meter holds at ``now``, in cost units (the token bucket: in 1/period units)."""
    a = spec.algorithm
    if a == "sliding_window":
        return sum(x for _, x in live_log(state, now, p[1]))
    if a == "concurrency":
        return sum(x for _, x in live_log(state, now, p[1]))
    if a in ("fixed_window", "calendar", "allowance"):
        return state[1] if state and state[0] >= p[1] else 0
    if a == "balance":
        return p[0] - (state[0] if state else p[0])
    rate, period, burst = p  # token bucket: the deficit below a full bucket
    level, last = bucket_level(state, p)
    if last is not None and now > last:
        level = min(burst * period, level + (now - last) * rate)
    return burst * period - level


@SETTINGS
@given(runs(), st.lists(st.integers(0, 50), min_size=1, max_size=4))
def test_settle_conserves_usage(run: tuple[Spec, int, Ops], actuals: list[int]) -> None:
    spec = run[0]
    algo = ALGORITHMS[spec.algorithm]
    for e in simulate(*run)[0]:
        if e.out is None or not e.out.allowed:
            continue
        now, p, c = e.now, e.params, e.cost
        before = usage(spec, e.before, now, p)
        unit = p[1] if spec.algorithm == "token_bucket" else 1
        assert usage(spec, e.after, now, p) == before + c * unit
        for a in [c, 0, *actuals]:
            settled = algo.settle(e.after, now, p, e.out.anchor, c, a)
            got = usage(spec, settled, now, p)
            if spec.algorithm == "concurrency":
                assert got == before  # the lease is gone, whatever the actual
            elif spec.algorithm == "token_bucket":
                assert got == max(0, before + a * unit)  # a refund cannot overfill the bucket
            else:
                assert got == before + a
            if spec.algorithm == "sliding_window" and c > 0:
                # Only the anchor's entry changes (the new charge sits exactly at the anchor).
                log = dict(live_log(e.after, now, p[1]))
                log[e.out.anchor] += a - c
                assert live_log(settled, now, p[1]) == sorted((t, x) for t, x in log.items() if x)
            if spec.algorithm in ("sliding_window", "concurrency"):
                check_log(settled)
            elif spec.algorithm in ("fixed_window", "calendar", "allowance") and settled:
                assert settled[1] > 0  # a window count: an emptied window stores nothing


@SETTINGS
@given(runs(), st.integers(0, 100), st.integers(0, 100))
def test_refunds_never_go_below_zero(run: tuple[Spec, int, Ops], extra: int, shift: int) -> None:
    """Settling more than is stored (a charge already refunded, a duplicated refund) floors the
    usage at zero and never stores a negative amount."""
    spec = run[0]
    if spec.algorithm in ("balance", "token_bucket"):
        return  # a balance and a bucket level are signed by design
    algo = ALGORITHMS[spec.algorithm]
    events, state, now = simulate(*run)
    p = spec.params(now)
    for e in events:
        if e.out is None or not e.out.allowed:
            continue
        anchor = e.out.anchor
        charged = e.cost + extra
        settled = algo.settle(state, now, p, anchor - shift % 3, charged, 0)
        assert usage(spec, settled, now, p) >= 0
        if spec.algorithm in ("sliding_window", "concurrency"):
            check_log(settled)
        elif settled:
            assert settled[1] > 0


@SETTINGS
@given(decisions(), st.integers(0, 50))
def test_settle_all_releases_or_settles_a_reservation(
    d: tuple[list[Spec], list[State], int, list[int]], actual: int
) -> None:
    specs_, states, now, costs = d
    steps_ = [Step(s.algorithm, s.params(now), c) for s, c in zip(specs_, costs, strict=True)]
    allowed, outcomes, new = decide(states, now, steps_)
    if not allowed:
        return
    charges = [
        Charge("slot", f"f{i}", f"m{i}", s.algorithm, s.params, o.anchor, s.cost)
        for i, (s, o) in enumerate(zip(steps_, outcomes, strict=True))
    ]
    released = settle_all(new, now, charges, None)
    settled = settle_all(new, now, charges, {"m0": actual})  # other meters keep their estimate
    for i, spec in enumerate(specs_):
        p = steps_[i].params
        before = usage(spec, states[i], now, p)
        assert usage(spec, released[i], now, p) == before
        if spec.algorithm == "concurrency":
            assert usage(spec, settled[i], now, p) == before  # the lease ends either way
            continue
        unit = p[1] if spec.algorithm == "token_bucket" else 1
        want = before + (actual if i == 0 else costs[i]) * unit
        assert usage(spec, settled[i], now, p) == (max(0, want) if unit > 1 else want)


@SETTINGS
@given(
    st.integers(0, 50),
    st.lists(st.tuples(st.booleans(), st.integers(0, 30), st.integers(0, 2**20)), max_size=40),
)
def test_balance_admits_while_it_covers_the_cost(
    grant: int, ops: list[tuple[bool, int, int]]
) -> None:
    bal = ALGORITHMS["balance"]
    p = (grant,)
    state: State = ()
    balance = grant  # the model: one signed integer
    pending: list[int] = []
    for now, (is_settle, cost, pick) in enumerate(ops):
        if is_settle and pending:
            charged = pending.pop(pick % len(pending))
            actual = pick % (2 * charged + 5)
            state = bal.settle(state, now, p, 0, charged, actual)
            balance -= actual - charged
        else:
            new, out = bal.acquire(state, now, p, cost)
            assert out.allowed == (balance - cost >= 0)
            assert out.reset_after == 0
            if out.allowed:
                balance -= cost
                state = new
                pending.append(cost)
                assert out.remaining == balance
            else:
                assert new == state and out.retry_after is None
                assert out.remaining == balance  # signed: an overdrawn balance shows its debt
        assert (state[0] if state else grant) == balance


def test_balance_settles_to_the_actual_spend() -> None:
    bal = ALGORITHMS["balance"]
    s, o = bal.acquire((), 0, (100,), 30)
    assert o.allowed and o.remaining == 70
    assert bal.settle(s, 5, (100,), 0, 30, 45) == (55,)
    assert bal.settle(s, 5, (100,), 0, 30, 0) == (100,)
    debt = bal.settle(s, 5, (100,), 0, 30, 130)
    assert debt == (-30,)
    _, o = bal.acquire(debt, 6, (100,), 0)
    assert not o.allowed and o.retry_after is None and o.remaining == -30  # the debt shows


@SETTINGS
@given(st.integers(1, 8), st.integers(1, 40), T0, st.data())
def test_concurrency_matches_the_lease_model(
    limit: int, lease: int, now: int, data: st.DataObject
) -> None:
    # Monotone clocks: with a clock going back, a lease that a clock ahead already dropped as
    # expired is (rightly) gone for the clock behind too; the generic tests cover that case.
    con = ALGORITHMS["concurrency"]
    p = (limit, lease)
    oracle = Leases(limit, lease)
    ops = data.draw(
        st.lists(
            st.tuples(
                st.integers(0, 2).map(lambda k: k == 0),
                steps(lease, 0),
                st.integers(0, limit + 1),
                st.integers(0, 2**20),
            ),
            max_size=50,
        )
    )
    state: State = ()
    pending: list[int] = []
    for is_settle, dt, cost, pick in ops:
        now += dt
        if is_settle and pending:
            start = pending.pop(pick % len(pending))
            state = con.settle(state, now, p, start, 1, pick % 3)
            oracle.release(start)
        else:
            expect = oracle.earliest(now, cost)
            start = oracle.acquire(now, cost)
            new, out = con.acquire(state, now, p, cost)
            assert out.allowed == (start is not None)
            assert out.remaining == max(0, limit - oracle.used(now))
            assert out.reset_after == oracle.reset_after(now)
            if out.allowed:
                assert out.anchor == start and out.retry_after == 0
                state = new
                if cost:
                    pending.append(out.anchor)
            else:
                assert new == state
                assert out.retry_after == (None if expect is None else expect - now)
        assert dict(live_log(state, now, lease)) == oracle.live(now)


def test_concurrency_settle_removes_the_lease() -> None:
    con = ALGORITHMS["concurrency"]
    p = (2, 1_000)
    s, a = con.acquire((), 10, p, 1)
    s, b = con.acquire(s, 10, p, 1)
    assert a.anchor != b.anchor  # unique starts identify the leases
    _, o = con.acquire(s, 10, p, 1)
    assert not o.allowed and o.retry_after == 1_000  # the oldest lease ends at 1_010
    s = con.settle(s, 20, p, a.anchor, 1, 1)
    s, o = con.acquire(s, 20, p, 1)
    assert o.allowed
    # A zero-cost reservation holds no lease: releasing it ends nobody's (its anchor is 0).
    s, z = con.acquire((0, 1), 0, p, 0)
    assert z.allowed and z.anchor == 0
    assert con.settle(s, 0, p, z.anchor, 0, 0) == (0, 1)
    _, o = con.acquire(s, 20, p, 3)
    assert not o.allowed and o.retry_after is None


# -- 6. counter windows ---------------------------------------------------------------------------


@st.composite
def window_runs(draw: st.DrawFn) -> tuple[int, int, int, Ops]:
    limit = draw(st.integers(1, 10))
    period = draw(st.integers(1, 50))
    ops = draw(
        st.lists(
            st.tuples(
                st.integers(0, 3).map(lambda k: k == 0),
                steps(period, 0),
                st.integers(0, limit + 1),
                st.integers(0, 2**20),
            ),
            max_size=60,
        )
    )
    return limit, period, draw(T0), ops


@SETTINGS
@given(window_runs())
def test_fixed_window_matches_per_window_counters(run: tuple[int, int, int, Ops]) -> None:
    limit, period, now, ops = run
    oracle = FixedWindows(limit, period)
    state: State = ()
    pending: list[tuple[int, Params, int]] = []
    for is_settle, dt, cost, pick in ops:
        now += dt
        if is_settle and pending:
            anchor, cp, charged = pending.pop(pick % len(pending))
            actual = pick % (2 * limit + 1)
            state = WC.settle(state, now, cp, anchor, charged, actual)
            oracle.settle(now, anchor, charged, actual)
            # The engine drops the state at its expiry: it must not drop a live window.
            if state:
                assert WC.expiry(state, cp) >= state[0] + period
            continue
        start, end = oracle.window(now)
        p = (limit, start, end)
        expect = oracle.earliest(now, cost)
        used = oracle.used(now)
        anchor = oracle.acquire(now, cost)
        new, out = WC.acquire(state, now, p, cost)
        assert out.allowed == (anchor is not None)
        assert out.remaining == max(0, limit - oracle.used(now))
        assert out.reset_after == (end - now if oracle.used(now) else 0)
        if out.allowed:
            assert out.anchor == start and out.retry_after == 0
            state = new
            pending.append((start, p, cost))
        else:
            assert new == state and oracle.used(now) == used
            assert out.retry_after == (None if expect is None else expect - now)
        assert (state[1] if state and state[0] == start else 0) == oracle.used(now)


@SETTINGS
@given(
    st.integers(1, 10),
    st.integers(1, 100),
    T0,
    st.integers(0, 10),
    st.integers(1, 5),
    st.integers(0, 10),
    st.integers(0, 20),
)
def test_a_new_window_starts_from_zero_and_expired_settles_do_nothing(
    limit: int, period: int, t0: int, used: int, later: int, cost: int, delta: int
) -> None:
    start = t0 // period * period
    p = (limit, start, start + period)
    state: State = (start, used) if used else ()
    # A later window: nothing carried over.
    q = (limit, start + later * period, start + (later + 1) * period)
    now = q[1] + (t0 % period)
    new, out = WC.acquire(state, now, q, cost)
    assert out.allowed == (cost <= limit)
    if out.allowed:
        assert out.remaining == limit - cost and out.anchor == q[1]
        assert new == ((q[1], cost) if cost else ())
    else:
        assert out.remaining == limit and out.retry_after is None
    # Settling a charge of the old window once it ended changes nothing, whatever is stored.
    for stored in (state, new):
        for actual in (0, delta, used + delta):
            assert WC.settle(stored, now, p, start, used, actual) == stored
            assert WC.settle(stored, p[2], p, start, used, actual) == stored
        # ...and the state stays alive as long as its own window does.
        if stored and stored[0] > start:
            assert WC.expiry(stored, p) >= stored[0] + period


def test_settling_after_the_window_rolled_over_keeps_the_new_window() -> None:
    """Engines store a state with ``expiry(state, params of the operation that wrote it)`` and
    drop it from then on (the memory engine drops it at once when that time has passed). A
    reservation made in one minute and settled in the next is settled with its own (old) params:
    the expiry must still cover the new minute's count."""
    t = 1_800_000_000_000  # a minute boundary
    old_p, new_p = (5, t - 60_000, t), (5, t, t + 60_000)
    s, first = WC.acquire((), t - 1, old_p, 1)
    s, _ = WC.acquire(s, t + 1, new_p, 3)
    assert s == (t, 3)
    s = WC.settle(s, t + 2, old_p, first.anchor, 1, 0)
    assert s == (t, 3)  # the old window is gone: nothing to refund
    assert WC.expiry(s, old_p) >= t + 60_000  # was t: the engine dropped the new minute's 3
    _, o = WC.acquire(s, t + 3, new_p, 3)
    assert not o.allowed and o.remaining == 2


def test_calendar_windows_of_unequal_length() -> None:
    # A 28-day window followed by a 31-day window (February, then March).
    feb, mar, apr = 0, 28 * DAY, 59 * DAY
    s, o = WC.acquire((), mar + 1, (10, mar, apr), 4)
    assert o.allowed and o.reset_after == apr - mar - 1
    # A clock slightly behind (still in February) counts into the newer stored window, and the
    # state written with February's params must outlive March.
    s2, o = WC.acquire(s, mar - 1, (10, feb, mar), 4)
    assert o.allowed and o.anchor == mar and s2 == (mar, 8)
    assert WC.expiry(s2, (10, feb, mar)) >= apr


# -- 7. the one-time allowance --------------------------------------------------------------------


@st.composite
def allowance_runs(draw: st.DrawFn) -> tuple[int, int, int, int, Ops]:
    limit = draw(st.integers(1, 10))
    span = draw(st.integers(1, 100))
    t0 = draw(T0)
    start = t0 + draw(st.integers(0, 50))
    ops = draw(
        st.lists(
            st.tuples(
                st.integers(0, 4).map(lambda k: k == 0),
                steps(span // 4 + 1, draw(st.sampled_from([0, 3]))),
                st.integers(0, limit + 1),
                st.integers(0, 2**20),
            ),
            max_size=60,
        )
    )
    return limit, start, start + span, t0, ops


@SETTINGS
@given(allowance_runs())
def test_allowance_is_a_one_time_budget(run: tuple[int, int, int, int, Ops]) -> None:
    limit, start, end, now, ops = run
    p = (limit, start, end)
    oracle = OneTimeBudget(limit, start, end)
    state: State = ()
    pending: list[int] = []
    refunded = False
    exhausted_for: int | None = None  # the smallest cost denied for lack of budget
    for is_settle, dt, cost, pick in ops:
        now += dt
        if is_settle and pending:
            charged = pending.pop(pick % len(pending))
            actual = pick % (2 * charged + 2)
            refunded |= actual < charged
            state = AL.settle(state, now, p, start, charged, actual)
            oracle.settle(now, charged, actual)
            continue
        allowed = oracle.acquire(now, cost)
        new, out = AL.acquire(state, now, p, cost)
        assert out.allowed == allowed
        if allowed:
            assert out.anchor == start and out.retry_after == 0
            assert out.remaining == limit - oracle.spent
            state = new
            pending.append(cost)
            assert exhausted_for is None or refunded or cost < exhausted_for
            continue
        assert new == state
        assert out.remaining == (0 if now >= end else max(0, limit - oracle.spent))
        if now >= end:
            assert out.retry_after is None and out.remaining == 0  # over for good
        elif now < start:
            assert out.retry_after == (start - now if cost <= limit else None)
        else:
            assert out.retry_after is None  # spent: never replenishes
            exhausted_for = cost if exhausted_for is None else min(exhausted_for, cost)
        assert (state[1] if state else 0) == oracle.spent


def test_allowance_example() -> None:
    p = (10, 1_000, 2_000)
    _, o = AL.acquire((), 400, p, 3)
    assert not o.allowed and o.retry_after == 600 and o.remaining == 10
    s, o = AL.acquire((), 1_000, p, 10)
    assert o.allowed and o.remaining == 0
    _, o = AL.acquire(s, 1_999, p, 1)
    assert not o.allowed and o.retry_after is None
    _, o = AL.acquire((), 2_000, p, 1)
    assert not o.allowed and o.retry_after is None


# -- 8. every value stays an exact integer below 2**53 --------------------------------------------


def check_safe(values: tuple[int, ...] | list[int]) -> None:
    for v in values:
        assert type(v) is int and -MAX_SAFE <= v <= MAX_SAFE, values


@st.composite
def big_runs(draw: st.DrawFn, algorithm: str) -> tuple[Spec, int, Ops]:
    t0 = draw(T0)
    spec = draw(specs(t0, big=True).filter(lambda s: s.algorithm == algorithm))
    return spec, t0, draw(traffic(spec, 4, big=True))


@pytest.mark.parametrize("algorithm", LIMITING)
@FEW
@given(data=st.data(), how=st.integers(0, 3))
def test_values_stay_exact_integers(algorithm: str, data: st.DataObject, how: int) -> None:
    run = data.draw(big_runs(algorithm))
    spec = run[0]
    algo = ALGORITHMS[spec.algorithm]
    if spec.algorithm == "token_bucket":  # the planner's validation of the params
        p = spec.params(0)
        assert p[2] * p[1] <= MAX_SAFE

    def actual_of(charged: int, pick: int) -> int:
        # Valid actual usage goes up to MAX_SAFE (the catalog's bound on any amount).
        return [0, charged * 2, spec.capacity or charged, MAX_SAFE - pick][how]

    for e in simulate(*run, actual_of=actual_of)[0]:
        check_safe(e.after)
        if e.out is not None:
            o = e.out
            check_safe([o.remaining, o.reset_after, o.anchor])
            if o.retry_after is not None:
                check_safe([o.retry_after])
            assert o.reset_after >= 0
            # Only a balance reports a signed remaining: an overdrawn account shows its debt.
            assert o.remaining >= 0 or spec.algorithm == "balance"
        if e.after:
            expiry = algo.expiry(e.after, e.params)
            if expiry is not None:
                check_safe([expiry])
        if spec.algorithm == "token_bucket" and e.after:
            # Every operation computes capacity - level: it must stay exact too.
            p = e.params
            check_safe([p[2] * p[1] - e.after[0]])
        if spec.algorithm in ("sliding_window", "concurrency"):
            check_safe([sum(e.after[1::2])])


@pytest.mark.parametrize("algorithm", LIMITING)
def test_two_reservations_settled_at_the_largest_valid_amount(algorithm: str) -> None:
    """The catalog accepts actual usage up to MAX_SAFE; two such settlements into one window
    must still leave exact integers (they used to reach 2 * MAX_SAFE, or MAX_SAFE * period)."""
    now = 4_000_000_000_000
    params = {
        "sliding_window": (100_000_000, DAY, 32),
        "token_bucket": reduce_rate(99_999_997, DAY, 99_999_997),  # coprime: period stays a day
        "fixed_window": (100_000_000, now - 5, now - 5 + DAY),
        "calendar": (100_000_000, now - 5, now - 5 + 31 * DAY),
        "allowance": (100_000_000, now - 5, now - 5 + DAY),
        "balance": (10**12,),
        "concurrency": (10_000, DAY),
    }[algorithm]
    algo = ALGORITHMS[algorithm]
    state: State = ()
    anchors = []
    for _ in range(2):
        state, out = algo.acquire(state, now, params, 1)
        assert out.allowed
        anchors.append(out.anchor)
    for i, anchor in enumerate(anchors):
        state = algo.settle(state, now + 1 + i, params, anchor, 1, MAX_SAFE)
        check_safe(state)
        if algorithm in ("sliding_window", "concurrency"):
            check_safe([sum(state[1::2])])
        if algorithm == "token_bucket" and state:
            check_safe([params[2] * params[1] - state[0]])
        expiry = algo.expiry(state, params)
        assert expiry is None or 0 <= expiry <= MAX_SAFE
    _, out = algo.acquire(state, now + 3, params, 1)
    check_safe([out.remaining, out.reset_after, out.anchor])
    if algorithm != "concurrency":  # settling ends a lease whatever the amount
        assert not out.allowed
