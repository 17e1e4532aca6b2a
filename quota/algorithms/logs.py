"""Algorithms whose state is a log of (time, amount) entries: the strict sliding window and leases.

State layout: ``(t1, a1, t2, a2, ...)`` with t ascending. An entry counts while ``t + span > now``.
The sliding window also has a working form, ``Log``, that the memory engine charges in place.
"""

from __future__ import annotations

from operator import sub

from .base import MAX_SAFE, Outcome, Params, State, ceil_div

_outcome = tuple.__new__  # Outcome(...) without the keyword handling: the hot path builds many

#: How far apart the clocks of the servers sharing one store may be (ms). Only refunds of charges
#: about to expire depend on it (see ``SlidingWindow.settle``).
SKEW_MS = 1_000


def _live(state: State, now: int, span: int) -> list[int]:
    """The entries of ``state`` still inside the span ending at ``now`` (flat list).

    Times ascend, so the expired entries are a prefix."""
    if not state or state[0] + span > now:  # nothing expired: the common case
        return list(state)
    i, n = 2, len(state)
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


def _first_free_in(log: Log, k: int, start: int, need: int) -> int:
    """ms until the oldest live entries (from index ``k``) expiring free at least ``need``,
    for a window that starts at ``start`` (now - span)."""
    freed = 0
    amounts = log.amounts
    for i in range(k, len(amounts)):
        freed += amounts[i]
        if freed >= need:
            return log.times[i] - start
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
    while len(log) > 2 * precision:
        # The first of the smallest gaps between adjacent times (ties: the oldest pair).
        gaps = list(map(sub, log[2::2], log[0:-2:2]))
        best = 2 * gaps.index(min(gaps))
        log[best + 3] += log[best + 1]
        del log[best : best + 2]


class Log:
    """A sliding window's log in the working form the memory engine keeps between calls (and
    ``SlidingWindow.acquire`` builds per call): times and amounts in two lists, their sum, and
    once merging starts the gaps between adjacent times, all updated in place.

    ``gaps[i] == times[i + 1] - times[i]`` whenever ``gaps`` is not None.
    """

    __slots__ = ("amounts", "gaps", "times", "used")

    def __init__(self, state: State = ()) -> None:
        self.times: list[int] = list(state[0::2])
        self.amounts: list[int] = list(state[1::2])
        self.used = sum(self.amounts)
        self.gaps: list[int] | None = None

    def state(self) -> State:
        """The flat state ``(t1, a1, t2, a2, ...)``."""
        flat = [0] * (2 * len(self.times))
        flat[0::2] = self.times
        flat[1::2] = self.amounts
        return tuple(flat)

    def expired(self, now: int, span: int) -> int:
        """How many entries have left the span ending at ``now`` (a prefix: times ascend)."""
        times = self.times
        if not times or times[0] + span > now:
            return 0
        i, n = 1, len(times)
        while i < n and times[i] + span <= now:
            i += 1
        return i

    def drop(self, k: int) -> None:
        """Forget the ``k`` oldest entries."""
        self.used -= sum(self.amounts[:k])
        del self.times[:k]
        del self.amounts[:k]
        if self.gaps is not None:
            del self.gaps[:k]

    def append(self, t: int, amount: int, precision: int) -> None:
        """Log ``amount`` at ``t`` (later than every entry), then merge the closest adjacent
        pair into the later time until at most ``precision`` entries remain.

        Merged amounts expire late, never early, so the window can only over-count: never
        over-admit."""
        times, amounts, gaps = self.times, self.amounts, self.gaps
        if gaps is not None and times:
            gaps.append(t - times[-1])
        times.append(t)
        amounts.append(amount)
        self.used += amount
        while len(times) > precision:
            if gaps is None:
                gaps = self.gaps = list(map(sub, times[1:], times[:-1]))
            # The first of the smallest gaps between adjacent times (ties: the oldest pair).
            i = gaps.index(min(gaps))
            amounts[i + 1] += amounts[i]
            del times[i], amounts[i]
            if i:
                gaps[i - 1] += gaps[i]
            del gaps[i]


#: The log of a limit with nothing stored (read, never written).
_EMPTY = Log()


class SlidingWindow:
    """Strict sliding window. Params ``(limit, window_ms, precision)``.

    Admit iff the amounts logged in the trailing window ``(now - W, now]`` plus the cost fit in the
    limit. Exact while at most ``precision`` entries are live; beyond, adjacent entries merge.

    One definition in two halves over a ``Log``: ``check`` says what the cost gets and changes
    nothing; ``commit`` charges an admitted cost in place. ``acquire`` is the two over a state.
    """

    form = Log
    empty = _EMPTY

    @staticmethod
    def acquire(state: State, now: int, p: Params, cost: int) -> tuple[State, Outcome]:
        log = Log(state)
        out = SlidingWindow.check(log, now, p, cost)
        if not out.allowed:
            return state, out
        SlidingWindow.commit(log, now, p, cost)
        return log.state(), out

    @staticmethod
    def check(log: Log, now: int, p: Params, cost: int) -> Outcome:
        """The outcome of ``cost`` against ``log`` at ``now``, changing nothing."""
        limit, window, _ = p
        times = log.times
        k = log.expired(now, window) if times and times[0] + window <= now else 0
        used = log.used - sum(log.amounts[:k]) if k else log.used
        if cost > limit - used:  # denied (amounts are positive: this includes cost > limit)
            reset = times[-1] + window - now if len(times) > k else 0
            if cost > limit:
                return _outcome(Outcome, (False, max(0, limit - used), reset, None, 0))
            retry = _first_free_in(log, k, now - window, used - (limit - cost))
            return _outcome(Outcome, (False, max(0, limit - used), reset, retry, 0))
        if len(times) == k:  # nothing live
            return _outcome(Outcome, (True, limit - cost, window if cost > 0 else 0, 0, now))
        t = times[-1]
        if t < now:
            t = now
        reset = t + window - now if cost > 0 else times[-1] + window - now
        return _outcome(Outcome, (True, limit - used - cost, reset, 0, t))

    @staticmethod
    def commit(log: Log, now: int, p: Params, cost: int) -> bool:
        """Charge ``cost`` (admitted by ``check`` at this ``now``) into ``log``, dropping what
        has expired; whether anything remains logged."""
        _, window, precision = p
        times = log.times
        if times and times[0] + window <= now:
            log.drop(log.expired(now, window))
        if cost > 0:
            if times and times[-1] >= now:  # an entry at now (or later: a clock behind)
                log.amounts[-1] += cost
                log.used += cost
            else:
                log.append(now, cost, precision)
        return bool(times)

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

    form = None  # the flat state is the working form

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
