"""Usage history: per-day totals of one meter over the last N days. It never denies.

Params ``(day_start, day_end, keep_from)``: the day holding ``now`` and the start of the oldest
day kept, all computed by the caller in the plan's time zone (so engines need no calendar and
DST days of 23 or 25 hours are exact). State layout: ``(d1, a1, d2, a2, ...)``, day starts
ascending, every amount positive; a day with no usage has no entry.

An acquire adds its cost to its day's entry and drops the days before ``keep_from``; settling
adjusts the day the charge was made on (its anchor), saturating at 0 and MAX_SAFE. Written by
the same engine call as the decision, so the history is exactly what was admitted.
"""

from __future__ import annotations

from .base import MAX_SAFE, Outcome, Params, State


def _find(log: list[int], day: int) -> tuple[int, bool]:
    """(index of ``day``'s entry or where it belongs, whether it is there)."""
    for i in range(0, len(log), 2):
        if log[i] >= day:
            return i, log[i] == day
    return len(log), False


def _add(log: list[int], day: int, delta: int) -> None:
    """Add ``delta`` (any sign) to ``day``'s entry in place; an entry reaching 0 is dropped."""
    i, found = _find(log, day)
    if found:
        amount = log[i + 1]
        amount = max(0, amount + delta if delta <= MAX_SAFE - amount else MAX_SAFE)
        if amount:
            log[i + 1] = amount
        else:
            del log[i : i + 2]
    elif delta > 0:
        log[i:i] = [day, delta]


def _amount(log: list[int], day: int) -> int:
    i, found = _find(log, day)
    return log[i + 1] if found else 0


class History:
    """Daily totals of one meter. ``remaining`` of an outcome is the day's total so far."""

    form = None  # the flat state is the working form

    @staticmethod
    def acquire(state: State, now: int, p: Params, cost: int) -> tuple[State, Outcome]:
        start, _, keep = p
        log = [x for i in range(0, len(state), 2) if state[i] >= keep for x in state[i : i + 2]]
        if cost > 0:
            _add(log, start, cost)
        return tuple(log), Outcome(True, _amount(log, start), 0, 0, start)

    @staticmethod
    def settle(state: State, now: int, p: Params, anchor: int, charged: int, actual: int) -> State:
        log = list(state)
        _add(log, anchor, actual - charged)
        return tuple(log)

    @staticmethod
    def expiry(state: State, p: Params) -> int | None:
        # The newest day leaves the history about (day_end - keep_from) after it starts; one
        # more day of margin covers DST (late is harmless: acquire prunes by keep_from).
        return state[-2] + (p[1] - p[2]) + (p[1] - p[0]) if state else 0


def amounts(state: State) -> dict[int, int]:
    """Day start -> total, for readers of a stored history."""
    return {state[i]: state[i + 1] for i in range(0, len(state), 2)}
