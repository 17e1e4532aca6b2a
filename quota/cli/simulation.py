"""The run behind ``quota simulate``: Poisson traffic in virtual time through one plan.

A real ``Limiter`` decides every request; only the clock is simulated (it jumps from arrival to
arrival), so an hour or a month of traffic takes as long as its decisions. Arrivals: exponential
gaps drawn from ``random.Random(seed).expovariate(rate per second)``, rounded to the
millisecond; the first request comes one gap after ``start``. The same seed gives the same run.
The command around it (costs, table, plot) is ``quota.cli.simulate``.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TextIO

from ..catalog import Catalog, Principal
from ..decision import Decision
from ..errors import ConfigError
from ..limiter import Limiter
from ..rates import parse_duration_ms, parse_rate
from ..states import LimitState

#: Refuse runs that would take minutes: about this many requests at most.
MAX_REQUESTS = 5_000_000
#: Plot resolution: each limit keeps first/min/max/last per bucket of virtual time.
BUCKETS = 1000
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def arrivals(per_second: float, duration_ms: int, seed: int) -> Iterator[int]:
    """Arrival offsets in ms from the start, strictly inside ``[0, duration_ms)``."""
    rng = random.Random(seed)
    t = 0.0
    while True:
        t += rng.expovariate(per_second)
        ms = round(t * 1000)
        if ms >= duration_ms:
            return
        yield ms


def rate_per_second(text: str) -> float:
    """``"20/minute"`` -> 0.333...; ConfigError naming the text when it is not a rate."""
    try:
        rate = parse_rate(text)
    except ValueError as exc:
        raise ConfigError(f"--rate: {exc}") from None
    if rate.amount <= 0:
        raise ConfigError(f"--rate must be positive, got {text!r}")
    return rate.amount * 1000 / rate.period_ms


def duration_ms(text: str) -> int:
    """``"1h"``, ``"90 minutes"``, ``"2 days"``, ``"3600"`` (seconds) -> milliseconds."""
    short = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}
    body = text.strip()
    if body[:-1].isdigit() and body[-1:] in short:
        body = f"{body[:-1]} {short[body[-1]]}s"
    try:
        return parse_duration_ms(float(body) if body.replace(".", "", 1).isdigit() else body)
    except ValueError as exc:
        raise ConfigError(f"--duration: {exc}") from None


@dataclass
class LimitStats:
    """What one limit did during a run."""

    name: str
    meter: str
    algorithm: str
    limit: int
    admitted: int = 0  # admitted requests that charged this limit
    denied: int = 0  # requests this limit denied (it was the binding denial)
    over: int = 0  # requests this limit alone would have refused
    min_remaining: int | None = None
    remaining: int | None = None  # at the end of the run (peek)
    buckets: dict[int, list[float]] = field(default_factory=dict, repr=False)

    def record(self, state: LimitState, decision: Decision, bucket: int) -> None:
        """Count what this limit did in one decision, and sample its remaining budget."""
        self.limit = state.limit
        if decision.allowed:
            self.admitted += 1
        elif decision.denied_by == state.name:
            self.denied += 1
        if not state.allowed:
            self.over += 1
        low = self.min_remaining
        self.min_remaining = state.remaining if low is None else min(low, state.remaining)
        self.sample(bucket, state.remaining / state.limit if state.limit > 0 else 0.0)

    def sample(self, bucket: int, fraction: float) -> None:
        """Keep the first, lowest, highest and last fraction seen in ``bucket``."""
        seen = self.buckets.get(bucket)
        if seen is None:
            self.buckets[bucket] = [fraction, fraction, fraction, fraction]
        else:
            seen[1] = min(seen[1], fraction)
            seen[2] = max(seen[2], fraction)
            seen[3] = fraction

    def points(self, duration_s: float) -> list[tuple[float, float]]:
        """(seconds, fraction of the limit remaining) for a step plot, in time order."""
        out: list[tuple[float, float]] = [(0.0, 1.0)]
        width = duration_s / BUCKETS
        for b in sorted(self.buckets):
            first, low, high, last = self.buckets[b]
            t0, mid = b * width, (b + 0.5) * width
            out += [(t0, first), (mid, high), (mid, low), (mid, last)]
        return out


@dataclass
class Result:
    """A whole run: its inputs, the request counts, and what each limit did."""

    catalog: str
    plan: str
    rate: str
    duration_ms: int
    seed: int
    cost: dict[str, int]
    start: dt.datetime
    requests: int = 0
    admitted: int = 0
    denied: int = 0
    denied_other: dict[str, int] = field(default_factory=dict)  # "model", "feature:x"
    limits: dict[str, LimitStats] = field(default_factory=dict)

    def record(self, decision: Decision, bucket: int) -> None:
        """Count one decision, on the run and on every limit of the plan it reports."""
        self.requests += 1
        if decision.allowed:
            self.admitted += 1
        else:
            self.denied += 1
            denied_by = decision.denied_by or "unknown"
            if denied_by not in self.limits:  # an entitlement: "model", "feature:x"
                self.denied_other[denied_by] = self.denied_other.get(denied_by, 0) + 1
        for state in decision.states:
            stats = self.limits.get(state.name)
            if stats is not None:
                stats.record(state, decision, bucket)

    def finish(self, states: Iterable[LimitState]) -> None:
        """Note every limit's size and remaining budget at the end of the run (a peek)."""
        for state in states:
            stats = self.limits[state.name]
            stats.limit, stats.remaining = state.limit, state.remaining

    def as_json(self) -> dict[str, object]:
        """The run as a JSON document (``quota simulate --json``), without the plot samples."""
        return {
            "catalog": self.catalog,
            "plan": self.plan,
            "rate": self.rate,
            "duration_seconds": self.duration_ms / 1000,
            "seed": self.seed,
            "cost": self.cost,
            "start": self.start.isoformat(),
            "requests": self.requests,
            "admitted": self.admitted,
            "denied": self.denied,
            "denied_other": self.denied_other,
            "limits": [
                {
                    "name": s.name,
                    "meter": s.meter,
                    "algorithm": s.algorithm,
                    "limit": s.limit,
                    "admitted": s.admitted,
                    "denied": s.denied,
                    "over": s.over,
                    "min_remaining": s.min_remaining,
                    "remaining": s.remaining,
                }
                for s in self.limits.values()
            ],
        }


class VirtualClock:
    """Epoch seconds that move only when the simulation says so (whole milliseconds)."""

    def __init__(self, start: dt.datetime) -> None:
        self.ms = round(start.timestamp() * 1000)

    def __call__(self) -> float:
        return self.ms / 1000


def traffic(rate: str, duration: str) -> tuple[float, int]:
    """Arrivals per second and the span in ms; ConfigError when the run would be about more
    than ``MAX_REQUESTS`` requests."""
    per_second = rate_per_second(rate)
    span = duration_ms(duration)
    expected = per_second * span / 1000
    if expected > MAX_REQUESTS:
        raise ConfigError(
            f"--rate {rate} for --duration {duration} is about {expected:,.0f} requests;"
            f" at most {MAX_REQUESTS:,} per run"
        )
    return per_second, span


def simulate(
    catalog: Catalog,
    plan: str,
    rate: str,
    duration: str,
    cost: Mapping[str, int],
    *,
    seed: int = 1,
    backend: str = "memory://",
    start: dt.datetime = START,
    account: str = "simulated",
    model: str | None = None,
    progress: Callable[[float, Result], None] | None = None,
) -> Result:
    """Run the simulation; the ``Result`` holds the counts per limit and the plot samples.
    ``progress`` is called about every 1% of the virtual time, and once at the end."""
    per_second, span = traffic(rate, duration)
    result = Result(catalog.name, plan, rate, span, seed, dict(cost), start)
    for lim in catalog.plan(plan).limits:
        result.limits[lim.name] = LimitStats(lim.name, lim.meter, lim.algorithm, 0)
    clock = VirtualClock(start)
    origin = clock.ms
    who = Principal(account=account, plan=plan, key=f"sk-{account}", cycle_start=start)
    step = max(span // 100, 1)
    next_report = step
    with Limiter(catalog, backend, clock=clock) as limiter:
        limiter.reset(who, include_balance=True)  # a shared store may hold an earlier run
        for offset in arrivals(per_second, span, seed):
            clock.ms = origin + offset
            result.record(limiter.acquire(who, cost, model=model), offset * BUCKETS // span)
            if progress is not None and offset >= next_report:
                progress(offset / span, result)
                next_report = (offset // step + 1) * step
        clock.ms = origin + span
        result.finish(limiter.peek(who))
    if progress is not None:
        progress(1.0, result)
    return result


class ProgressBar:
    """``simulate [#########-----------]  45%  534 requests`` redrawn in place on ``stream``."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.shown = -1

    def __call__(self, fraction: float, result: Result) -> None:
        percent = math.floor(fraction * 100)
        if percent == self.shown:
            return
        self.shown = percent
        filled = round(self.width * fraction)
        bar = "#" * filled + "-" * (self.width - filled)
        end = "\n" if percent >= 100 else ""
        self.stream.write(f"\rsimulate [{bar}] {percent:3d}%  {result.requests:,} requests{end}")
        self.stream.flush()
