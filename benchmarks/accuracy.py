"""Accuracy: request traces through every library's sliding-window-ish limit on virtual time.

For each trace and library: the largest number of requests admitted in any trailing window
``(t - W, t]``, as a multiple of the limit (above 1.00x is over-admission), and the share of
requests wrongly denied: denied although the library's own admitted requests in the trailing
window left room, i.e. an exact sliding window in the same state would have admitted.

Time is virtual for all: quota gets ``clock=``; pyrate-limiter gets the clock through its
``BucketFactory.wrap_item``; limits (``limits.storage.memory``) and throttled-py
(``throttled.utils.now_sec/now_ms/now_mono_f``) read the time through module attributes that
are patched for the run. All use their in-memory storage.

    uv run --group bench python -m benchmarks.accuracy
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import quota

from . import peer_pyrate
from .shapes import Limit

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a window boundary for every aligned scheme
Decider = Callable[[int], bool]  # virtual epoch ms -> admitted?


class VirtualTime:
    """The one virtual clock every library reads during a trace."""

    def __init__(self) -> None:
        self.ms = T0_MS

    def seconds(self) -> float:
        return self.ms / 1000


@contextmanager
def patched(obj: Any, **attrs: Any) -> Iterator[None]:
    old = {name: getattr(obj, name) for name in attrs}
    for name, value in attrs.items():
        setattr(obj, name, value)
    try:
        yield
    finally:
        for name, value in old.items():
            setattr(obj, name, value)


# -- traces ----------------------------------------------------------------------------------


def poisson(limit: int, window_ms: int, load: float, windows: int, rng: random.Random) -> list[int]:
    """Arrivals at ``load`` times the limit's rate, for ``windows`` windows."""
    rate = load * limit / window_ms
    out: list[int] = []
    t = 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= windows * window_ms:
            return out
        out.append(T0_MS + int(t))


def edge_bursts(
    limit: int, window_ms: int, rounds: int, rng: random.Random, before: int
) -> list[int]:
    """``before`` requests in the last second before an (epoch-aligned) window boundary, then
    ``limit`` in the first second after it; repeated every other window."""
    out = []
    for r in range(rounds):
        boundary = T0_MS + (2 * r + 1) * window_ms
        out += [boundary - 1 - rng.randrange(1000) for _ in range(before)]
        out += [boundary + rng.randrange(1000) for _ in range(limit)]
    return sorted(out)


def random_bursts(limit: int, window_ms: int, bursts: int, rng: random.Random) -> list[int]:
    """Bursts of ``limit`` requests within 100 ms, at uniformly random times."""
    span = bursts * window_ms // 2
    out = []
    for _ in range(bursts):
        start = T0_MS + rng.randrange(span)
        out += [start + rng.randrange(100) for _ in range(limit)]
    return sorted(out)


def traces(limit: int, window_ms: int, seed: int = 7) -> dict[str, list[int]]:
    rng = random.Random(seed)
    return {
        "Poisson 0.8x, 1 h": poisson(limit, window_ms, 0.8, 60, rng),
        "Poisson 1.5x, 1 h": poisson(limit, window_ms, 1.5, 60, rng),
        "window-edge bursts (L/2 then L), 30x": edge_bursts(limit, window_ms, 30, rng, limit // 2),
        "window-edge bursts (L then L), 30x": edge_bursts(limit, window_ms, 30, rng, limit),
        "random bursts of L, 60x": random_bursts(limit, window_ms, 60, rng),
    }


# -- scoring ---------------------------------------------------------------------------------


@dataclass
class Score:
    worst: float  # max admitted in any trailing window / limit
    wrongly_denied: float  # share of all requests
    vs_exact: float  # requests admitted / those an exact sliding window admits on the trace


def exact(times: list[int], limit: int, window_ms: int) -> int:
    """How many requests an exact sliding window over ``(t - W, t]`` admits."""
    log: list[int] = []
    for t in times:
        if len(log) - bisect.bisect_right(log, t - window_ms) < limit:
            log.append(t)
    return len(log)


def score(times: list[int], admitted: list[bool], limit: int, window_ms: int) -> Score:
    log: list[int] = []  # admitted times, ascending
    worst = 0
    wrong = 0
    for t, ok in zip(times, admitted, strict=True):
        in_window = len(log) - bisect.bisect_right(log, t - window_ms)  # entries in (t-W, t]
        if ok:
            log.append(t)
            worst = max(worst, in_window + 1)
        elif in_window + 1 <= limit:
            wrong += 1
    return Score(worst / limit, wrong / len(times), len(log) / exact(times, limit, window_ms))


# -- libraries on virtual time ---------------------------------------------------------------


def _quota(lim: Limit, vt: VirtualTime) -> Decider:
    catalog = quota.Catalog.load(
        {
            "plans": {
                "p": {
                    "limits": [
                        {"name": "w", "meter": "requests", "rate": f"{lim.amount}/{lim.per}"}
                    ]
                }
            }
        }
    )
    limiter = quota.Limiter(catalog, "memory://", clock=vt.seconds)
    who = quota.Principal(account="a", plan="p")
    return lambda ms: limiter.acquire(who, {"requests": 1}).allowed


def _limits(strategy: str) -> Callable[[Limit, VirtualTime], Decider]:
    def make(lim: Limit, vt: VirtualTime) -> Decider:
        import limits.strategies
        from limits import RateLimitItemPerDay, RateLimitItemPerMinute
        from limits.storage import MemoryStorage

        storage = MemoryStorage()
        limiter = getattr(limits.strategies, strategy)(storage)
        item = (RateLimitItemPerMinute if lim.per == "minute" else RateLimitItemPerDay)(lim.amount)
        return lambda ms: bool(limiter.hit(item, "a"))

    return make


def _throttled(lim: Limit, vt: VirtualTime) -> Decider:
    import throttled

    quota_ = (throttled.per_min if lim.per == "minute" else throttled.per_day)(lim.amount)
    t = throttled.Throttled(using="sliding_window", quota=quota_, store=throttled.MemoryStore())
    return lambda ms: not t.limit("a").limited


def _pyrate(lim: Limit, vt: VirtualTime) -> Decider:
    import pyrate_limiter as pl

    bucket = pl.InMemoryBucket([peer_pyrate.rate(lim)], algorithm=pl.SlidingWindowLog())
    limiter = pl.Limiter(peer_pyrate.factory({"a": bucket}, clock=lambda: vt.ms, leak=False))
    return lambda ms: bool(limiter.try_acquire("a", 1, blocking=False))


LIBRARIES: dict[str, Callable[[Limit, VirtualTime], Decider]] = {
    "quota (sliding window)": _quota,
    "limits (moving window)": _limits("MovingWindowRateLimiter"),
    "limits (sliding window counter)": _limits("SlidingWindowCounterRateLimiter"),
    "limits (fixed window)": _limits("FixedWindowRateLimiter"),
    "throttled-py (sliding window)": _throttled,
    "pyrate-limiter (sliding window log)": _pyrate,
}


@contextmanager
def virtual(vt: VirtualTime) -> Iterator[None]:
    """Point the peers' module-level time functions at ``vt``."""
    import limits.storage.memory as lmem
    import throttled.utils as tutils

    fake_time = SimpleNamespace(time=vt.seconds)
    with (
        patched(lmem, time=fake_time),
        patched(
            tutils,
            now_sec=lambda: vt.ms // 1000,
            now_ms=lambda: vt.ms,
            now_mono_f=vt.seconds,
        ),
    ):
        yield


def play(make: Callable[[Limit, VirtualTime], Decider], lim: Limit, times: list[int]) -> list[bool]:
    vt = VirtualTime()
    with virtual(vt):
        decide = make(lim, vt)
        out = []
        for t in times:
            vt.ms = t
            out.append(decide(t))
    return out


def run() -> tuple[str, float]:
    """The tables, and quota's worst trailing-window count as a multiple of the limit."""
    sections = []
    quota_worst = 0.0
    for amount in (10, 100):
        lim = Limit("w", "requests", amount, "minute", "sliding")
        head = "| trace | requests | " + " | ".join(LIBRARIES) + " |"
        lines = [
            f"Limit {amount}/minute; each cell: worst count admitted in a trailing minute / limit"
            " · requests wrongly denied (the trailing window had room) · requests admitted as a"
            " share of what an exact sliding window admits on the same trace",
            "",
            head,
            "|---|---:|" + "---:|" * len(LIBRARIES),
        ]
        for name, times in traces(amount, 60_000).items():
            cells = []
            for lib, make in LIBRARIES.items():
                s = score(times, play(make, lim, times), amount, 60_000)
                if lib.startswith("quota"):
                    quota_worst = max(quota_worst, s.worst)
                cells.append(
                    f"{s.worst:.2f}x · {100 * s.wrongly_denied:.1f}% · {100 * s.vs_exact:.1f}%"
                )
            lines.append(f"| {name} | {len(times):,} | " + " | ".join(cells) + " |")
        sections.append("\n".join(lines))
    return "\n\n".join(sections), quota_worst


def main() -> None:
    text, _ = run()
    print(text)


if __name__ == "__main__":
    main()
