"""Brute-force reference models for the pure algorithms in ``quota.algorithms``.

Each model keeps the obvious, unoptimised representation of what a limit means (every admission
individually, the bucket level as an exact fraction, one counter per window) so that the tests
can compare the compact integer state machines against them decision for decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from math import ceil, floor

# -- strict sliding window ------------------------------------------------------------------------


@dataclass
class Charge:
    time: int
    amount: int


@dataclass
class ExactLog:
    """The strict sliding window with every admission kept individually.

    An admission counts at ``now`` while ``time + window > now`` (so the trailing window is
    ``(now - W, now]``; admissions logged after ``now`` by a clock that is ahead count as well).
    A new admission is logged at ``max(now, latest live logged time)`` so logged times never go
    backwards when the clock does.
    """

    limit: int
    window: int
    charges: dict[int, Charge] = field(default_factory=dict)
    next_id: int = 0

    def live(self, now: int) -> list[Charge]:
        return [c for c in self.charges.values() if c.time + self.window > now and c.amount > 0]

    def used(self, now: int) -> int:
        return sum(c.amount for c in self.live(now))

    def admits(self, now: int, cost: int) -> bool:
        return cost <= self.limit and self.used(now) + cost <= self.limit

    def log_time(self, now: int) -> int:
        return max([now] + [c.time for c in self.live(now)])

    def reset_after(self, now: int) -> int:
        live = self.live(now)
        return max(c.time for c in live) + self.window - now if live else 0

    def remaining(self, now: int) -> int:
        return max(0, self.limit - self.used(now))

    def earliest(self, now: int, cost: int) -> int | None:
        """The first instant ``s >= now`` at which ``cost`` is admitted (no other traffic)."""
        if cost > self.limit:
            return None
        # used(s) only drops when a charge expires, at time + window.
        candidates = sorted({now} | {c.time + self.window for c in self.charges.values()})
        for s in candidates:
            if s >= now and self.admits(s, cost):
                return s
        raise AssertionError("unreachable: once everything expired, cost <= limit fits")

    def acquire(self, now: int, cost: int) -> tuple[bool, int | None]:
        """(allowed, charge id) — a charge id even for cost 0, so it can be settled."""
        if not self.admits(now, cost):
            return False, None
        cid = self.next_id
        self.next_id += 1
        self.charges[cid] = Charge(self.log_time(now), cost)
        return True, cid

    def settle(self, now: int, cid: int, actual: int) -> None:
        c = self.charges[cid]
        if c.time + self.window <= now:
            return  # expired: its amount no longer matters
        c.amount = actual


# -- token bucket ---------------------------------------------------------------------------------


@dataclass
class ContinuousBucket:
    """Continuous refill of ``amount / period_ms`` tokens per ms up to ``burst``, in Fractions.

    ``last`` is the time of the level; a full bucket carries no time (``last is None``), so a
    clock that is behind a full bucket simply finds it full. A clock behind ``last`` refills
    nothing. The level may go negative after a settlement above the estimate (debt).
    """

    amount: int
    period_ms: int
    burst: int
    level: Fraction = Fraction(0)
    last: int | None = None

    def __post_init__(self) -> None:
        self.level = Fraction(self.burst)
        self.speed = Fraction(self.amount, self.period_ms)

    def level_at(self, now: int) -> Fraction:
        if self.last is None:
            return Fraction(self.burst)
        if now <= self.last:
            return self.level
        return min(Fraction(self.burst), self.level + (now - self.last) * self.speed)

    def _time(self, now: int) -> int:
        return now if self.last is None else max(now, self.last)

    def _set(self, now: int, level: Fraction) -> None:
        self.last = None if level >= self.burst else self._time(now)
        self.level = min(Fraction(self.burst), level)

    def admits(self, now: int, cost: int) -> bool:
        return cost <= self.burst and self.level_at(now) >= cost

    def acquire(self, now: int, cost: int) -> bool:
        if not self.admits(now, cost):
            return False
        self._set(now, self.level_at(now) - cost)
        return True

    def settle(self, now: int, charged: int, actual: int) -> None:
        self._set(now, self.level_at(now) - (actual - charged))

    def remaining(self, now: int) -> int:
        return max(0, floor(self.level_at(now)))

    def reset_after(self, now: int) -> int:
        lag = self._time(now) - now
        return lag + ceil((self.burst - self.level_at(now)) / self.speed)

    def earliest(self, now: int, cost: int) -> int | None:
        if cost > self.burst:
            return None
        level = self.level_at(now)
        if level >= cost:
            return now
        return self._time(now) + ceil((cost - level) / self.speed)


# -- counters -------------------------------------------------------------------------------------


@dataclass
class FixedWindows:
    """Fixed windows of ``period`` ms aligned on the epoch: one counter per window start."""

    limit: int
    period: int
    counts: dict[int, int] = field(default_factory=dict)

    def window(self, now: int) -> tuple[int, int]:
        start = now // self.period * self.period
        return start, start + self.period

    def used(self, now: int) -> int:
        return self.counts.get(self.window(now)[0], 0)

    def admits(self, now: int, cost: int) -> bool:
        return self.used(now) + cost <= self.limit

    def acquire(self, now: int, cost: int) -> int | None:
        """The window start charged, or None when denied."""
        if not self.admits(now, cost):
            return None
        start = self.window(now)[0]
        self.counts[start] = self.counts.get(start, 0) + cost
        return start

    def settle(self, now: int, start: int, charged: int, actual: int) -> None:
        if now >= start + self.period:
            return
        self.counts[start] = max(0, self.counts.get(start, 0) + actual - charged)

    def earliest(self, now: int, cost: int) -> int | None:
        if cost > self.limit:
            return None
        if self.admits(now, cost):
            return now
        return self.window(now)[1]


@dataclass
class OneTimeBudget:
    """A budget of ``limit`` usable in ``[start, end)`` only, never replenished."""

    limit: int
    start: int
    end: int
    spent: int = 0

    def admits(self, now: int, cost: int) -> bool:
        return self.start <= now < self.end and self.spent + cost <= self.limit

    def acquire(self, now: int, cost: int) -> bool:
        if not self.admits(now, cost):
            return False
        self.spent += cost
        return True

    def settle(self, now: int, charged: int, actual: int) -> None:
        if now < self.end:
            self.spent = max(0, self.spent + actual - charged)


# -- concurrency ----------------------------------------------------------------------------------


@dataclass
class Leases:
    """At most ``limit`` in flight: each admitted cost is a lease that ends when released or
    ``lease_ms`` after it started. Leases start at ``now``, or 1 ms after the latest live lease
    when that is not earlier, so every live lease has its own start."""

    limit: int
    lease_ms: int
    leases: dict[int, int] = field(default_factory=dict)  # start -> amount

    def live(self, now: int) -> dict[int, int]:
        return {t: a for t, a in self.leases.items() if t + self.lease_ms > now}

    def used(self, now: int) -> int:
        return sum(self.live(now).values())

    def admits(self, now: int, cost: int) -> bool:
        return cost <= self.limit and self.used(now) + cost <= self.limit

    def acquire(self, now: int, cost: int) -> int | None:
        """The lease's start, or None when denied (0 for a cost of 0: no lease)."""
        if not self.admits(now, cost):
            return None
        if cost == 0:
            return 0
        live = self.live(now)
        start = max(now, max(live) + 1) if live else now
        self.leases = {**live, start: cost}
        return start

    def release(self, start: int) -> None:
        self.leases.pop(start, None)

    def reset_after(self, now: int) -> int:
        live = self.live(now)
        return max(live) + self.lease_ms - now if live else 0

    def earliest(self, now: int, cost: int) -> int | None:
        if cost > self.limit:
            return None
        for s in sorted({now} | {t + self.lease_ms for t in self.leases}):
            if s >= now and self.admits(s, cost):
                return s
        raise AssertionError("unreachable")
