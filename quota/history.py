"""Usage history, the catalog side: the synthetic history limits the planner adds to every
decision (``[usage] history_days``), their day windows, and turning stored states into a report.

The engine side is the pure algorithm ``quota.algorithms.history``: the history is written by
the same atomic engine call as the decision, and settle/release adjust it like any limit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from .algorithms import State
from .algorithms.history import amounts
from .backends.base import Op
from .catalog import Catalog
from .limit import Limit
from .windows import calendar_window

#: The algorithm of history limits; they never deny and never show in decisions or peeks.
HISTORY: Final = "history"


def history_field(meter: str) -> str:
    """The storage field of a meter's history: ``@`` never starts a limit name, so a history
    never meets a limit's state."""
    return f"@{meter}"


def meters_of(catalog: Catalog) -> list[str]:
    """Every meter of the catalog: declared names in their order, then the others sorted."""
    declared = [m for m in catalog.meters.names if m in catalog.meter_names]
    return declared + sorted(catalog.meter_names - set(declared))


def history_limits(catalog: Catalog) -> tuple[Limit, ...]:
    """One account-scoped history limit per meter of the catalog; none when history is off."""
    days = catalog.usage.history_days
    if not days:
        return ()
    return tuple(
        Limit.model_construct(
            name=history_field(meter), meter=meter, algorithm=HISTORY, amount=days, scope="account"
        )
        for meter in meters_of(catalog)
    )


class DayWindows:
    """Day boundaries in a zone, cached per zone for the current day.

    ``params`` gives a history limit its ``(day_start, day_end, keep_from)``: the day holding
    ``now`` and the start of the oldest of the ``days`` days kept (DST-exact: zoneinfo).
    """

    def __init__(self, days: int) -> None:
        self.days = days
        self._last: dict[dt.tzinfo, tuple[int, int, int]] = {}

    def params(self, now: int, zone: dt.tzinfo) -> tuple[int, int, int]:
        hit = self._last.get(zone)
        if hit is not None and hit[0] <= now < hit[1]:
            return hit
        starts = day_starts(now, zone, self.days)
        start, end = calendar_window(now, "day", zone)
        if len(self._last) > 64:
            self._last.clear()
        self._last[zone] = (start, end, starts[0])
        return self._last[zone]


def day_starts(now: int, zone: dt.tzinfo, days: int) -> list[int]:
    """Start (epoch ms) of each of the ``days`` days ending with today's, oldest first."""
    start = calendar_window(now, "day", zone)[0]
    out = [start]
    for _ in range(days - 1):
        out.append(calendar_window(out[-1] - 1, "day", zone)[0])
    return out[::-1]


def report(
    meters: Sequence[str], states: Iterable[State], now: int, zone: dt.tzinfo, days: int
) -> dict[str, dict[str, int]]:
    """``{"YYYY-MM-DD": {meter: total}}`` for the last ``days`` days (in ``zone``), oldest
    first, today last; a day without usage is there with zeros."""
    per_meter = [amounts(st) for st in states]
    out: dict[str, dict[str, int]] = {}
    for start in day_starts(now, zone, days):
        date = dt.datetime.fromtimestamp(start / 1000, zone).date().isoformat()
        out[date] = {m: totals.get(start, 0) for m, totals in zip(meters, per_meter, strict=True)}
    return out


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """What ``Limiter.usage`` reads (one op per meter's history) and how it reports it."""

    meters: tuple[str, ...]
    ops: tuple[Op, ...]
    now: int
    zone: dt.tzinfo
    days: int

    def report(self, states: Sequence[State]) -> dict[str, dict[str, int]]:
        return report(self.meters, states, self.now, self.zone, self.days)
