"""Algorithms whose state is a log of (time, amount) entries: the strict sliding window and leases.

State layout: ``(t1, a1, t2, a2, ...)`` with t ascending. An entry counts while ``t + span > now``.
"""

from __future__ import annotations

from .base import MAX_SAFE, Outcome, Params, State, ceil_div

#: How far apart the clocks of the servers sharing one store may be (ms). Only refunds of charges
#: about to expire depend on it (see ``SlidingWindow.settle``).
SKEW_MS = 1_000


def _live(state: State, now: int, span: int) -> list[int]:
    """The entries of ``state`` still inside the span ending at ``now`` (flat list).

    Times ascend, so the expired entries are a prefix."""
    i, n = 0, len(state)
    while i < n and state[i] + span <= now:
        i += 2
    return list(state[i:])


def _used(log: list[int]) -> int:
    return sum(log[1::2])


def _first_free(log: list[int], now: int, span: int, need: int) -> int:
    """ms until the oldest entries expiring free at least ``need`` (need > 0, always reachable)."""
    freed = 0
    for i in range(0, len(log), 2):
        freed += log[i + 1]
        if freed >= need:
            return log[i] + span - now
    raise AssertionError("unreachable: need exceeds the log")  # pragma: no cover


def _check(
    state: State, now: int, span: int, limit: int, cost: int
) -> tuple[list[int], int, int, Outcome | None]:
    """(live log, used, reset ms, the denial or None) for ``cost`` against ``limit``."""
    log = _live(state, now, span)
    used = _used(log)
    reset = log[-2] + span - now if log else 0
    if cost > limit:
        return log, used, reset, Outcome(False, max(0, limit - used), reset, None)
    if cost > limit - used:
        retry = _first_free(log, now, span, used - (limit - cost))
        return log, used, reset, Outcome(False, max(0, limit - used), reset, retry)
    return log, used, reset, None


def _compress(log: list[int], precision: int) -> None:
    """Merge the closest adjacent pair into the later time until at most ``precision`` entries.

    Merged amounts expire late, never early, so the window can only over-count: never over-admit.
    """
    while len(log) // 2 > precision:
        # The first of the smallest gaps between adjacent times (ties: the oldest pair).
        gaps = [b - a for a, b in zip(log[0:-2:2], log[2::2], strict=True)]
        best = 2 * gaps.index(min(gaps))
        log[best + 3] += log[best + 1]
        del log[best : best + 2]


class SlidingWindow:
    """Strict sliding window. Params ``(limit, window_ms, precision)``.

    Admit iff the amounts logged in the trailing window ``(now - W, now]`` plus the cost fit in the
    limit. Exact while at most ``precision`` entries are live; beyond, adjacent entries merge.
    """

    @staticmethod
    def acquire(state: State, now: int, p: Params, cost: int) -> tuple[State, Outcome]:
        limit, window, precision = p
        log, used, reset, denial = _check(state, now, window, limit, cost)
        if denial is not None:
            return state, denial
        t = max(now, log[-2]) if log else now
        if cost > 0:
            if log and log[-2] == t:
                log[-1] += cost
            else:
                log.extend((t, cost))
                _compress(log, precision)
            reset = t + window - now
        return tuple(log), Outcome(True, limit - used - cost, reset, 0, t)

    @staticmethod
    def settle(state: State, now: int, p: Params, anchor: int, charged: int, actual: int) -> State:
        _, window, precision = p
        log = _live(state, now, window)
        delta = actual - charged
        if delta == 0 or anchor + window <= now:
            return tuple(log)
        if delta > 0:
            # Saturate: the logged total stays <= MAX_SAFE (exact in Lua); beyond, it denies alike.
            delta = min(delta, MAX_SAFE - _used(log))
        # The charge made at ``anchor`` sits in the first entry at or after it (merges only move
        # amounts later, and new entries are appended at the end) -- unless a server whose clock
        # is ahead already dropped it as expired, and that entry holds only later charges.
        # Refunding those would under-count them, so a refund into a later entry is skipped when
        # the charge is within SKEW_MS of expiring (keeping it is safe: it over-counts).
        for i in range(0, len(log), 2):
            if log[i] >= anchor:
                if delta < 0 and log[i] > anchor and anchor + window - SKEW_MS <= now:
                    return tuple(log)
                log[i + 1] = max(0, log[i + 1] + delta)
                if log[i + 1] == 0:
                    del log[i : i + 2]
                return tuple(log)
        if delta > 0:
            log.extend((anchor, delta))
            _compress(log, precision)
        return tuple(log)

    @staticmethod
    def expiry(state: State, p: Params) -> int | None:
        return state[-2] + p[1] if state else 0


class Concurrency:
    """At most ``limit`` in flight. Params ``(limit, lease_ms)``.

    Each admitted cost is a lease ``(start, amount)``; starts are unique and increasing, so a
    start identifies its lease. Settle or release ends the lease; an abandoned lease ends by
    itself after ``lease_ms`` so a crashed worker cannot leak slots.
    """

    @staticmethod
    def acquire(state: State, now: int, p: Params, cost: int) -> tuple[State, Outcome]:
        limit, lease = p
        log, used, reset, denial = _check(state, now, lease, limit, cost)
        if denial is not None:
            return state, denial
        if cost == 0:
            return tuple(log), Outcome(True, limit - used, reset, 0, 0)
        t = max(now, log[-2] + 1) if log else now
        log.extend((t, cost))
        return tuple(log), Outcome(True, limit - used - cost, t + lease - now, 0, t)

    @staticmethod
    def settle(state: State, now: int, p: Params, anchor: int, charged: int, actual: int) -> State:
        log = _live(state, now, p[1])
        # A zero charge holds no lease (its anchor 0 names none): settling it ends nothing.
        for i in range(0, len(log) if charged > 0 else 0, 2):
            if log[i] == anchor:
                del log[i : i + 2]
                break
        return tuple(log)

    @staticmethod
    def expiry(state: State, p: Params) -> int | None:
        return state[-2] + p[1] if state else 0


__all__ = ["Concurrency", "SlidingWindow", "ceil_div"]
