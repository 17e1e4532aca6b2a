"""Calendar and billing-cycle window boundaries as integer epoch milliseconds.

Limiters compute windows here and hand storage engines plain ``(start_ms, end_ms)`` pairs
(start inclusive, end exclusive), so every backend agrees on DST and month-length rules.

A window boundary is a local wall-clock time (e.g. "midnight on the 1st"). It maps to the
first instant at which the local clock reads that time or later: an ambiguous time
(DST fall-back) uses its first occurrence (``fold=0``) and a nonexistent time (DST gap) maps
to the end of the gap. Boundaries are therefore monotonic, so consecutive windows tile.
"""

from __future__ import annotations

import calendar
import datetime
import math
from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["CALENDAR_UNITS", "calendar_window", "cycle_window", "get_zone", "to_ms"]

CALENDAR_UNITS = ("day", "week", "month", "year")

_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)
_MS = datetime.timedelta(milliseconds=1)
_MIDNIGHT = datetime.time()


def get_zone(name: str) -> datetime.tzinfo:
    """Return the tzinfo for an IANA zone name; "UTC" (any case) needs no tzdata."""
    if name.upper() == "UTC":
        return _UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        # Bad keys raise ValueError, missing ones a KeyError subclass: report both alike.
        raise ValueError(f"unknown time zone {name!r}") from exc


def to_ms(value: datetime.datetime | float | int) -> int:
    """Epoch ms from an aware datetime (naive is taken as UTC) or epoch seconds (floored to ms)."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=_UTC)
        return (value - _EPOCH) // _MS
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected datetime or epoch seconds, got {type(value).__name__}")
    if isinstance(value, int):
        return value * 1000
    return math.floor(value * 1000)


def _local(ms: int, tz: datetime.tzinfo) -> datetime.datetime:
    """Naive local wall-clock time of an epoch-ms instant (exact integer arithmetic)."""
    return (_EPOCH + datetime.timedelta(milliseconds=ms)).astimezone(tz).replace(tzinfo=None)


def _wall_to_ms(wall: datetime.datetime, tz: datetime.tzinfo) -> int:
    """First instant whose local wall-clock time in ``tz`` is ``wall`` or later.

    Ambiguous times resolve to their first occurrence; times inside a DST gap resolve to
    the transition instant (the first existing local time after the gap).
    """
    early = to_ms(wall.replace(tzinfo=tz, fold=0))
    if _local(early, tz) == wall:
        return early
    # A gap: PEP 495 maps the two folds to instants on either side of the transition, so
    # binary-search between them for the first instant whose local time reaches ``wall``.
    late = to_ms(wall.replace(tzinfo=tz, fold=1))
    lo, hi = min(early, late), max(early, late)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _local(mid, tz) >= wall:
            hi = mid
        else:
            lo = mid
    return hi


def _locate(now_ms: int, guess: int, boundary: Callable[[int], int]) -> tuple[int, int]:
    """Window ``[boundary(k), boundary(k + 1))`` containing ``now_ms``, starting from ``guess``.

    ``boundary`` is non-decreasing, and ``guess`` is off by at most a step or two (only
    DST transitions that cross the boundary move it), so the loops below are short.
    """
    k = guess
    start = boundary(k)
    while start > now_ms:
        k -= 1
        start = boundary(k)
    end = boundary(k + 1)
    while end <= now_ms:
        k += 1
        start, end = end, boundary(k + 1)
    return start, end


def _month_start(index: int) -> datetime.date:
    """First day of month ``index`` (``year * 12 + month - 1``)."""
    year, month0 = divmod(index, 12)
    return datetime.date(year, month0 + 1, 1)


# unit -> (index of the window holding a local date, first local date of window ``index``).
# Date ordinal 1 (0001-01-01) is a Monday, so ISO weeks start at the ordinals 7k + 1.
_UNITS: dict[str, tuple[Callable[[datetime.date], int], Callable[[int], datetime.date]]] = {
    "day": (datetime.date.toordinal, datetime.date.fromordinal),
    "week": (lambda d: (d.toordinal() - 1) // 7, lambda k: datetime.date.fromordinal(7 * k + 1)),
    "month": (lambda d: d.year * 12 + d.month - 1, _month_start),
    "year": (lambda d: d.year, lambda k: datetime.date(k, 1, 1)),
}


def calendar_window(now_ms: int, unit: str, tz: datetime.tzinfo) -> tuple[int, int]:
    """The calendar day/week/month/year containing ``now_ms`` in ``tz``, as ``(start, end)`` ms.

    Days run local midnight to local midnight (23 or 25 hours across DST), weeks are ISO
    weeks starting Monday, months start on the 1st and years on Jan 1, all at 00:00 local.
    """
    try:
        index_of, date_of = _UNITS[unit]
    except KeyError:
        raise ValueError(
            f"unknown calendar unit {unit!r}; expected one of {CALENDAR_UNITS}"
        ) from None

    def boundary(k: int) -> int:
        return _wall_to_ms(datetime.datetime.combine(date_of(k), _MIDNIGHT), tz)

    return _locate(now_ms, index_of(_local(now_ms, tz).date()), boundary)


def cycle_window(
    now_ms: int, anchor_ms: int, tz: datetime.tzinfo, months: int = 1
) -> tuple[int, int]:
    """The billing cycle containing ``now_ms`` for a subscription started at ``anchor_ms``.

    Cycle ``k`` starts ``k * months`` months after the anchor's local date, at the anchor's
    local wall-clock time, with the day clamped to the month's length. Every cycle is derived
    from the anchor (not chained), so an anchor on the 31st returns to the 31st after
    February. Cycle 0 starts exactly at ``anchor_ms``; negative cycles precede it.
    """
    if months < 1:
        raise ValueError(f"months must be >= 1, got {months}")
    anchor = _local(anchor_ms, tz)
    anchor_index = anchor.year * 12 + anchor.month - 1
    now = _local(now_ms, tz)
    guess = (now.year * 12 + now.month - 1 - anchor_index) // months

    def boundary(k: int) -> int:
        if k == 0:
            return anchor_ms  # exact even if the anchor is the second occurrence of its time
        first = _month_start(anchor_index + k * months)
        day = min(anchor.day, calendar.monthrange(first.year, first.month)[1])
        return _wall_to_ms(anchor.replace(year=first.year, month=first.month, day=day), tz)

    return _locate(now_ms, guess, boundary)


class WindowCache:
    """Remembers the last window of each (unit or anchor, zone): a decision inside it reuses
    the boundaries instead of recomputing them with zoneinfo. Bounded; safe to share."""

    def __init__(self, size: int = 4_096) -> None:
        self.size = size
        self._last: dict[tuple[object, ...], tuple[int, int]] = {}

    def _get(self, key: tuple[object, ...], now_ms: int) -> tuple[int, int] | None:
        hit = self._last.get(key)
        return hit if hit is not None and hit[0] <= now_ms < hit[1] else None

    def _put(self, key: tuple[object, ...], window: tuple[int, int]) -> tuple[int, int]:
        if len(self._last) >= self.size:
            self._last.clear()
        self._last[key] = window
        return window

    def calendar(self, now_ms: int, unit: str, tz: datetime.tzinfo) -> tuple[int, int]:
        key = (unit, tz)
        return self._get(key, now_ms) or self._put(key, calendar_window(now_ms, unit, tz))

    def cycle(
        self, now_ms: int, anchor_ms: int, tz: datetime.tzinfo, months: int = 1
    ) -> tuple[int, int]:
        key = (anchor_ms, months, tz)
        hit = self._get(key, now_ms)
        return hit or self._put(key, cycle_window(now_ms, anchor_ms, tz, months))
