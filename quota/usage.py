"""Usage history, the catalog side: the ``[usage]`` setting, the synthetic history limits the
planner adds to every decision, their day windows, and turning stored states into a report.

The engine side is the pure algorithm ``quota.algorithms.history``: the history is written by
the same atomic engine call as the decision, and settle/release adjust it like any limit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from pydantic import BaseModel, ConfigDict, Field

from .algorithms import State
from .algorithms.history import amounts
from .backends.base import Op
from .errors import ConfigError
from .limit import Limit
from .windows import calendar_window

if TYPE_CHECKING:
    from .catalog import Catalog, Principal
    from .planner import Planner

#: The algorithm of history limits; they never deny and never show in decisions or peeks.
HISTORY: Final = "history"

#: The most days a history may keep (a year and a day: daily entries stay well under 2**53).
MAX_DAYS = 366


class UsageConfig(BaseModel):
    """``[usage]`` of a catalog: ``history_days`` = how many days of daily totals per meter
    each account keeps (0 = no history)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    history_days: int = Field(default=0, ge=0, le=MAX_DAYS)


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


def usage_query(planner: Planner, who: Principal, now: int, days: int) -> UsageQuery:
    """The history ops of ``who``'s account; ConfigError when history is off or ``days`` is
    not 1..history_days."""
    kept = planner.catalog.usage.history_days
    if not kept:
        raise ConfigError(
            f"catalog {planner.catalog.name!r} keeps no usage history: set [usage] history_days"
        )
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= kept:
        raise ConfigError(f"days must be an integer from 1 to {kept} (history_days), got {days!r}")
    plan = planner.catalog.plan(who.plan)
    ops = tuple(planner.op(who, plan, lim, now, 0) for lim in planner.history)
    zone = planner.catalog.zone_of(plan, planner.history[0])
    return UsageQuery(tuple(lim.meter for lim in planner.history), ops, now, zone, days)
