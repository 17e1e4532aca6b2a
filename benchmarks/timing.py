"""Timing loops (``time.perf_counter_ns`` around every decision) and markdown tables."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

Decide = Callable[[], bool]
ADecide = Callable[[], Awaitable[bool]]


@dataclass
class Settings:
    seconds: float = 0.6  # measured time per library, scenario and round
    rounds: int = 3  # rounds, libraries interleaved; the best round counts
    warmup: int = 300  # decisions before measuring
    callers: int = 64  # concurrent callers in the async scenario


@dataclass
class Result:
    name: str
    note: str
    decisions: int
    seconds: float
    latencies_ns: list[int] = field(repr=False)
    extra: str = ""
    admitted: int = 0
    warmup: int = 0  # decisions made before the measurement
    server_us: float | None = None  # redis-server CPU time per decision (INFO cpu)
    command_us: float | None = None  # time inside commands per decision (INFO commandstats)

    @property
    def rate(self) -> float:
        return self.decisions / self.seconds

    def percentile_us(self, q: float) -> float:
        ordered = sorted(self.latencies_ns)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


class Unexpected(RuntimeError):
    """A decision came out other than the scenario requires (e.g. a denial in a run that
    must admit everything): the figures would compare different work."""


def _check(name: str, got: bool, expect: bool | None) -> None:
    if expect is not None and got is not expect:
        raise Unexpected(f"{name}: a decision returned {got}, the scenario needs {expect}")


def run_sync(
    name: str, note: str, decide: Decide, cfg: Settings, expect: bool | None = True
) -> Result:
    """Warm up, then call ``decide`` one at a time for ``cfg.seconds``. Every decision must
    come out as ``expect`` (``None``: any; the admitted ones are counted)."""
    for _ in range(cfg.warmup):
        _check(name, decide(), expect)
    clock = time.perf_counter_ns
    lat: list[int] = []
    admitted = 0
    start = clock()
    deadline = start + int(cfg.seconds * 1e9)
    now = start
    while now < deadline:
        t0 = clock()
        ok = decide()
        now = clock()
        lat.append(now - t0)
        if ok:
            admitted += 1
        if ok is not expect:
            _check(name, ok, expect)
    return Result(
        name, note, len(lat), (now - start) / 1e9, lat, admitted=admitted, warmup=cfg.warmup
    )


async def _run_async(name: str, decide: ADecide, cfg: Settings, expect: bool) -> Result:
    rounds = max(1, cfg.warmup // cfg.callers)
    for _ in range(rounds):
        for ok in await asyncio.gather(*(decide() for _ in range(cfg.callers))):
            _check(name, ok, expect)
    clock = time.perf_counter_ns
    lat: list[int] = []
    start = clock()
    deadline = start + int(cfg.seconds * 1e9)

    async def caller() -> None:
        now = clock()
        while now < deadline:
            t0 = clock()
            ok = await decide()
            now = clock()
            lat.append(now - t0)
            if ok is not expect:
                _check(name, ok, expect)

    await asyncio.gather(*(caller() for _ in range(cfg.callers)))
    elapsed = (clock() - start) / 1e9
    return Result(name, "", len(lat), elapsed, lat, warmup=rounds * cfg.callers)


def run_async(
    name: str,
    note: str,
    make: Callable[[], Awaitable[tuple[ADecide, Callable[[], Awaitable[None]]]]],
    cfg: Settings,
    expect: bool = True,
) -> Result:
    """In a fresh event loop: build the decider, run ``cfg.callers`` concurrent callers."""

    async def main() -> Result:
        decide, close = await make()
        try:
            result = await _run_async(name, decide, cfg, expect)
        finally:
            await close()
        result.note = note
        return result

    return asyncio.run(main())


def table(
    results: Sequence[Result],
    reference: str = "quota",
    extra: str = "",
    ratio_label: str = "vs quota",
) -> str:
    """A markdown table: decisions/s, p50/p99 latency and the rate as a multiple of the
    ``reference`` row's rate (its name)."""
    ref = next((r for r in results if r.name == reference), None)
    server = any(r.server_us is not None for r in results)
    head = f"| library | decisions/s | p50 µs | p99 µs | {ratio_label} |"
    sep = "|---|---:|---:|---:|---:|"
    if server:
        head += " Redis CPU µs/decision |"
        sep += "---:|"
    if extra:
        head += f" {extra} |"
        sep += "---:|"
    head += " what it does per decision |"
    sep += "---|"
    lines = [head, sep]
    for r in results:
        ratio = f"{r.rate / ref.rate:.2f}" if ref else "-"
        row = (
            f"| {r.name} | {r.rate:,.0f} | {r.percentile_us(0.5):,.1f} "
            f"| {r.percentile_us(0.99):,.1f} | {ratio} |"
        )
        if server:
            row += f" {r.server_us:,.1f} |" if r.server_us is not None else " - |"
        if extra:
            row += f" {r.extra} |"
        lines.append(f"{row} {r.note} |")
    return "\n".join(lines)
