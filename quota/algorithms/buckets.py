"""Token bucket (continuous refill), in exact integers.

Params ``(rate, period, burst)``: ``rate`` tokens refill every ``period`` ms (the fraction reduced
by the caller), capacity ``burst`` tokens. The level is kept in units of 1/period token so that
refill is ``elapsed * rate`` with no division: ``State = (level, last_ms)``. Debt (a negative
level after a settlement above the estimate) is paid back by refill; it saturates at
``capacity - MAX_SAFE`` units so that ``capacity - level`` (computed by every operation) stays exact
in Lua, and times past MAX_SAFE ms (never, in practice) saturate at MAX_SAFE.
"""

from __future__ import annotations

from .base import MAX_SAFE, Outcome, Params, State, ceil_div


def _level(state: State, now: int, p: Params) -> tuple[int, int]:
    """(level, time) after refilling up to ``now``; a clock behind the state refills nothing."""
    rate, period, burst = p
    cap = burst * period
    if not state:
        return cap, now
    level, last = state
    if now > last and level < cap:
        # Full once the elapsed time covers the gap; else the refill stays below the gap.
        level = cap if now - last >= ceil_div(cap - level, rate) else level + (now - last) * rate
    return level, max(now, last)


def _later(t: int, ms: int) -> int:
    """``t + ms`` saturated at MAX_SAFE (ms >= 0)."""
    return t + ms if ms <= MAX_SAFE - t else MAX_SAFE


class TokenBucket:
    """Refills continuously at rate/period; admits iff the level covers the cost."""

    form = None  # the flat state is the working form

    @staticmethod
    def acquire(state: State, now: int, p: Params, cost: int) -> tuple[State, Outcome]:
        rate, period, burst = p
        cap = burst * period
        level, last = _level(state, now, p)
        lag = last - now
        need = cost * period
        if cost > burst:
            return state, _view(level, lag, p, False, None)
        if level < need:
            return state, _view(level, lag, p, False, _later(lag, ceil_div(need - level, rate)))
        level -= need
        return ((level, last) if level < cap else ()), _view(level, lag, p, True, 0)

    @staticmethod
    def settle(state: State, now: int, p: Params, anchor: int, charged: int, actual: int) -> State:
        _, period, burst = p
        cap = burst * period
        level, last = _level(state, now, p)
        delta = actual - charged
        if delta >= 0:  # more used than charged: debt, saturating at cap - MAX_SAFE
            floor = cap - MAX_SAFE
            level = floor if delta > (level - floor) // period else level - delta * period
        elif -delta >= ceil_div(cap - level, period):  # a refund that fills the bucket
            level = cap
        else:
            level -= delta * period
        return (level, last) if level < cap else ()

    @staticmethod
    def expiry(state: State, p: Params) -> int | None:
        if not state:
            return 0
        return _later(state[1], ceil_div(p[2] * p[1] - state[0], p[0]))


def _view(level: int, lag: int, p: Params, allowed: bool, retry: int | None) -> Outcome:
    rate, period, burst = p
    remaining = max(0, level) // period
    return Outcome(allowed, remaining, _later(lag, ceil_div(burst * period - level, rate)), retry)
