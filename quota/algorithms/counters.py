"""Algorithms that count into one window: fixed and calendar windows, and one-time allowances.

State layout: ``(window_start, count)``. The caller computes the window ``[start, end)`` (epoch
alignment, a calendar in a time zone, a billing cycle, a trial span) and passes it in the params,
so the engines need no calendar arithmetic.
"""

from __future__ import annotations

from .base import MAX_SAFE, Outcome, Params, State

_outcome = tuple.__new__  # Outcome(...) without the keyword handling: the hot path builds many


def _count(state: State, start: int) -> tuple[int, int]:
    """(window id, count) to use: a stored newer window (a clock slightly behind) wins."""
    if state and state[0] >= start:
        return state[0], state[1]
    return start, 0


class WindowCounter:
    """Fixed and calendar windows. Params ``(limit, start, end)``: the window holding ``now``."""

    form = None  # the flat state is the working form

    @staticmethod
    def acquire(state: State, now: int, p: Params, cost: int) -> tuple[State, Outcome]:
        limit, start, end = p
        # _count, inline (every acquire of a calendar limit runs this)
        wid, count = state if state and state[0] >= start else (start, 0)
        if cost > limit - count:  # denied (counts are positive: this includes cost > limit)
            reset = end - now if count else 0
            retry = None if cost > limit else end - now
            return state, _outcome(Outcome, (False, max(0, limit - count), reset, retry, 0))
        count += cost
        if not count:
            return (), _outcome(Outcome, (True, limit, 0, 0, wid))
        return (wid, count), _outcome(Outcome, (True, limit - count, end - now, 0, wid))

    @staticmethod
    def settle(state: State, now: int, p: Params, anchor: int, charged: int, actual: int) -> State:
        return _settle_window(state, now, p, anchor, actual - charged)

    @staticmethod
    def expiry(state: State, p: Params) -> int | None:
        # The state may hold a window later than ``p``'s: written by a clock slightly behind, or
        # by settling a charge of ``p``'s window after it ended. That window's end is not known
        # here; keep the state for twice ``p``'s length past its start (consecutive windows of one
        # kind, fixed or calendar, never differ in length by a factor of 2). Late is harmless: an
        # older window is ignored by ``_count``.
        if state and state[0] > p[1]:
            return state[0] + 2 * (p[2] - p[1])
        return p[2]


def _settle_window(state: State, now: int, p: Params, anchor: int, delta: int) -> State:
    """Apply ``delta`` to the window the charge was made in, while that window is live."""
    end = p[2]
    if delta == 0 or now >= end:
        return state
    if state and state[0] == anchor:
        # Saturate at MAX_SAFE (any count above the limit denies alike) to stay exact in Lua.
        count = max(0, state[1] + delta if delta <= MAX_SAFE - state[1] else MAX_SAFE)
        return (anchor, count) if count else ()
    if (not state or state[0] < anchor) and delta > 0:
        return (anchor, delta)
    return state


class Allowance:
    """A one-time budget over ``[start, end)``: a free trial. Params ``(limit, start, end)``.

    Denies before the span (until it starts), after it (for good) and once the budget is spent
    (for good): an allowance never replenishes.
    """

    form = None  # the flat state is the working form

    @staticmethod
    def acquire(state: State, now: int, p: Params, cost: int) -> tuple[State, Outcome]:
        limit, start, end = p
        _, count = _count(state, start)
        if now >= end:
            return state, Outcome(False, 0, 0, None)
        left = max(0, limit - count)
        if now < start:
            return state, Outcome(False, left, end - now, start - now if cost <= limit else None)
        if cost > limit - count:
            return state, Outcome(False, left, end - now, None)
        count += cost
        new: State = (start, count) if count else ()
        return new, Outcome(True, limit - count, end - now, 0, start)

    @staticmethod
    def settle(state: State, now: int, p: Params, anchor: int, charged: int, actual: int) -> State:
        return _settle_window(state, now, p, anchor, actual - charged)

    @staticmethod
    def expiry(state: State, p: Params) -> int | None:
        # After the span every cost is denied whatever the state says.
        return p[2]
