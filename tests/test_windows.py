"""Tests for quota.windows: calendar and billing-cycle windows across DST and month lengths."""

from __future__ import annotations

import calendar
from datetime import datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quota import windows
from quota.windows import (
    CALENDAR_UNITS,
    WindowCache,
    calendar_window,
    cycle_window,
    get_zone,
    to_ms,
)

UTC = timezone.utc
HOUR = 3_600_000
DAY = 24 * HOUR
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SANTIAGO = ZoneInfo("America/Santiago")
HAVANA = ZoneInfo("America/Havana")


def ms(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    *,
    tz: tzinfo = UTC,
    fold: int = 0,
) -> int:
    """Epoch ms of a local wall-clock time in ``tz``."""
    return to_ms(datetime(year, month, day, hour, minute, tzinfo=tz, fold=fold))


def local(instant: int, tz: tzinfo) -> datetime:
    """Naive local wall time of an epoch-ms instant, computed independently of the module."""
    whole = datetime.fromtimestamp(instant // 1000, tz)
    return whole.replace(microsecond=instant % 1000 * 1000, tzinfo=None)


def exists(wall: datetime, tz: tzinfo) -> bool:
    """Whether a naive local wall time occurs in ``tz`` (i.e. is not inside a DST gap)."""
    aware = wall.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall


# --- get_zone / to_ms ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["UTC", "utc", "Utc"])
def test_get_zone_utc_needs_no_tzdata(name: str) -> None:
    assert get_zone(name) is timezone.utc


def test_get_zone_iana() -> None:
    assert get_zone("Europe/Berlin") == BERLIN


@pytest.mark.parametrize("name", ["Mars/Base", "", "America", "America/", "../etc", "/etc/passwd"])
def test_get_zone_unknown(name: str) -> None:
    with pytest.raises(ValueError, match=f"unknown time zone {name!r}"):
        get_zone(name)


def test_get_zone_message_is_exact() -> None:
    with pytest.raises(ValueError) as info:
        get_zone("Mars/Base")
    assert str(info.value) == "unknown time zone 'Mars/Base'"


def test_to_ms() -> None:
    assert to_ms(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert to_ms(datetime(2026, 1, 1, 1, tzinfo=BERLIN)) == to_ms(datetime(2026, 1, 1))
    assert to_ms(datetime(2026, 1, 1)) == 1_767_225_600_000  # naive is UTC
    assert to_ms(datetime(1970, 1, 1, 0, 0, 1, 999_999)) == 1999  # floors microseconds
    assert to_ms(datetime(1969, 12, 31, 23, 59, 59, 999_999)) == -1
    assert to_ms(1_767_225_600) == 1_767_225_600_000
    assert to_ms(1.25) == 1250
    assert to_ms(1.0019) == 1001
    assert to_ms(-0.0005) == -1


def test_to_ms_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        to_ms(True)
    with pytest.raises(TypeError):
        to_ms("1")  # type: ignore[arg-type]


# --- calendar days ---------------------------------------------------------------------------


def test_day_utc() -> None:
    day = (ms(2026, 5, 17), ms(2026, 5, 18))
    assert calendar_window(ms(2026, 5, 17, 13, 45), "day", UTC) == day
    assert calendar_window(day[0], "day", UTC) == day  # start inclusive
    assert calendar_window(day[1] - 1, "day", UTC) == day
    assert calendar_window(day[1], "day", UTC)[0] == day[1]  # end exclusive


@pytest.mark.parametrize(
    ("tz", "date", "hours"),
    [
        (NEW_YORK, (2026, 3, 8), 23),  # spring forward 02:00 -> 03:00
        (NEW_YORK, (2026, 11, 1), 25),  # fall back 02:00 -> 01:00
        (NEW_YORK, (2026, 7, 1), 24),
        (BERLIN, (2026, 3, 29), 23),
        (BERLIN, (2026, 10, 25), 25),
        (SANTIAGO, (2026, 4, 4), 25),  # 24:00 -> 23:00 on Saturday: midnight stays unique
        (ZoneInfo("Australia/Lord_Howe"), (2026, 10, 4), 23.5),  # half-hour DST
    ],
)
def test_day_across_dst(tz: tzinfo, date: tuple[int, int, int], hours: float) -> None:
    start, end = calendar_window(ms(*date, 12, tz=tz), "day", tz)
    assert start == ms(*date, tz=tz)
    assert local(start, tz) == datetime(*date)
    assert local(end, tz) == datetime(*date) + timedelta(days=1)
    assert end - start == hours * HOUR


@pytest.mark.parametrize(
    ("tz", "date"),
    [
        (SANTIAGO, (2026, 9, 6)),  # 00:00 -> 01:00 on the first Sunday of September
        (HAVANA, (2026, 3, 8)),
        (ZoneInfo("Asia/Beirut"), (2026, 3, 29)),
    ],
)
def test_day_starting_in_midnight_gap(tz: tzinfo, date: tuple[int, int, int]) -> None:
    midnight = datetime(*date)
    assert not exists(midnight, tz)
    start, end = calendar_window(ms(*date, 12, tz=tz), "day", tz)
    assert local(start, tz) == midnight + timedelta(hours=1)  # first existing instant
    assert local(start - 1, tz) == midnight - timedelta(milliseconds=1)  # the day before
    assert end - start == 23 * HOUR
    previous = calendar_window(start - 1, "day", tz)
    before = midnight - timedelta(days=1)
    assert previous == (ms(before.year, before.month, before.day, tz=tz), start)
    assert previous[1] - previous[0] == 24 * HOUR


def test_santiago_gap_day_in_utc() -> None:
    start, _ = calendar_window(ms(2026, 9, 6, 12, tz=SANTIAGO), "day", SANTIAGO)
    assert start == ms(2026, 9, 6, 4)  # 01:00 -03:00


def test_day_starting_at_ambiguous_midnight_uses_first_occurrence() -> None:
    # Havana falls back 01:00 -> 00:00 on 2026-11-01, so that midnight happens twice.
    start, end = calendar_window(ms(2026, 11, 1, 0, 30, tz=HAVANA, fold=1), "day", HAVANA)
    assert start == ms(2026, 11, 1, tz=HAVANA, fold=0) == ms(2026, 11, 1, 4)
    assert end - start == 25 * HOUR


def test_skipped_calendar_day() -> None:
    # Samoa skipped 2011-12-30 entirely; Dec 29 ends where Dec 31 begins.
    apia = ZoneInfo("Pacific/Apia")
    dec29 = calendar_window(ms(2011, 12, 29, 12, tz=apia), "day", apia)
    dec31 = calendar_window(ms(2011, 12, 31, 12, tz=apia), "day", apia)
    assert dec29[1] == dec31[0] == ms(2011, 12, 31, tz=apia)
    assert dec29[1] - dec29[0] == 24 * HOUR


# --- weeks, months, years --------------------------------------------------------------------


def test_week_starts_monday() -> None:
    week = (ms(2026, 3, 9), ms(2026, 3, 16))
    assert datetime(2026, 3, 9).weekday() == 0
    for day in range(9, 16):
        assert calendar_window(ms(2026, 3, day, 23, 59), "week", UTC) == week
    assert calendar_window(week[1] - 1, "week", UTC) == week
    assert calendar_window(week[1], "week", UTC) == (week[1], ms(2026, 3, 23))


def test_week_spans_year_end() -> None:
    assert calendar_window(ms(2026, 1, 1), "week", UTC) == (ms(2025, 12, 29), ms(2026, 1, 5))


def test_week_is_local() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    # Sunday 20:00 UTC is already Monday 01:30 in Kolkata.
    start, end = calendar_window(ms(2026, 3, 15, 20), "week", kolkata)
    assert (local(start, kolkata), local(end, kolkata)) == (
        datetime(2026, 3, 16),
        datetime(2026, 3, 23),
    )


def test_week_across_dst() -> None:
    start, end = calendar_window(ms(2026, 3, 8, 12, tz=NEW_YORK), "week", NEW_YORK)
    assert start == ms(2026, 3, 2, tz=NEW_YORK)
    assert end - start == 7 * DAY - HOUR


@pytest.mark.parametrize(
    ("year", "month", "days"),
    [(2026, 2, 28), (2028, 2, 29), (2100, 2, 28), (2000, 2, 29), (2026, 4, 30), (2026, 1, 31)],
)
def test_month_lengths(year: int, month: int, days: int) -> None:
    start, end = calendar_window(ms(year, month, 15), "month", UTC)
    assert start == ms(year, month, 1)
    assert end - start == days * DAY


def test_month_december_rolls_year() -> None:
    assert calendar_window(ms(2026, 12, 31, 23), "month", UTC) == (ms(2026, 12, 1), ms(2027, 1, 1))


def test_month_across_dst_is_local() -> None:
    start, end = calendar_window(ms(2026, 3, 31, 23, 30, tz=BERLIN), "month", BERLIN)
    assert (start, end) == (ms(2026, 3, 1, tz=BERLIN), ms(2026, 4, 1, tz=BERLIN))
    assert end - start == 31 * DAY - HOUR


@pytest.mark.parametrize(("year", "days"), [(2026, 365), (2028, 366)])
def test_year(year: int, days: int) -> None:
    start, end = calendar_window(ms(year, 7, 4), "year", UTC)
    assert (start, end) == (ms(year, 1, 1), ms(year + 1, 1, 1))
    assert end - start == days * DAY


def test_year_is_local() -> None:
    # 2027-01-01 03:00 UTC is still 2026 in New York.
    start, end = calendar_window(ms(2027, 1, 1, 3), "year", NEW_YORK)
    assert (start, end) == (ms(2026, 1, 1, tz=NEW_YORK), ms(2027, 1, 1, tz=NEW_YORK))


def test_unknown_unit() -> None:
    with pytest.raises(ValueError, match="'fortnight'"):
        calendar_window(0, "fortnight", UTC)


# --- billing cycles --------------------------------------------------------------------------


def cycle_starts(anchor: int, tz: tzinfo, count: int, months: int = 1) -> list[datetime]:
    """Local start times of cycles 0..count-1, found by walking window ends."""
    starts, now = [], anchor
    for _ in range(count):
        start, now = cycle_window(now, anchor, tz, months)
        starts.append(local(start, tz))
    return starts


def test_cycle_month_end_clamps_without_drift() -> None:
    anchor = ms(2026, 1, 31, 10)
    assert cycle_starts(anchor, UTC, 6) == [
        datetime(2026, 1, 31, 10),
        datetime(2026, 2, 28, 10),
        datetime(2026, 3, 31, 10),
        datetime(2026, 4, 30, 10),
        datetime(2026, 5, 31, 10),
        datetime(2026, 6, 30, 10),
    ]
    feb = (ms(2026, 2, 28, 10), ms(2026, 3, 31, 10))
    assert cycle_window(ms(2026, 3, 15), anchor, UTC) == feb
    jan = (ms(2027, 1, 31, 10), ms(2027, 2, 28, 10))
    assert cycle_window(ms(2027, 2, 28, 9), anchor, UTC) == jan


def test_cycle_leap_years() -> None:
    assert cycle_window(ms(2028, 3, 1), ms(2028, 1, 31), UTC) == (ms(2028, 2, 29), ms(2028, 3, 31))
    anchor = ms(2028, 2, 29, 8)
    assert cycle_starts(anchor, UTC, 2) == [datetime(2028, 2, 29, 8), datetime(2028, 3, 29, 8)]
    yearly = cycle_starts(anchor, UTC, 5, months=12)
    assert [d.date() for d in yearly] == [
        datetime(2028, 2, 29).date(),
        datetime(2029, 2, 28).date(),
        datetime(2030, 2, 28).date(),
        datetime(2031, 2, 28).date(),
        datetime(2032, 2, 29).date(),
    ]


def test_cycle_keeps_local_wall_time_across_dst() -> None:
    anchor = ms(2026, 1, 15, 9, 30, tz=BERLIN)
    winter = cycle_window(ms(2026, 3, 20), anchor, BERLIN)
    assert winter == (ms(2026, 3, 15, 8, 30), ms(2026, 4, 15, 7, 30))  # +01:00, then +02:00
    assert {d.time() for d in cycle_starts(anchor, BERLIN, 12)} == {time(9, 30)}


def test_cycle_keeps_anchor_milliseconds() -> None:
    anchor = ms(2026, 1, 5, 10) + 123
    start, end = cycle_window(ms(2026, 6, 20), anchor, UTC)
    assert (start, end) == (ms(2026, 6, 5, 10) + 123, ms(2026, 7, 5, 10) + 123)


def test_cycle_quarterly() -> None:
    anchor = ms(2025, 11, 30, 12)
    assert cycle_starts(anchor, UTC, 5, months=3) == [
        datetime(2025, 11, 30, 12),
        datetime(2026, 2, 28, 12),
        datetime(2026, 5, 30, 12),
        datetime(2026, 8, 30, 12),
        datetime(2026, 11, 30, 12),
    ]
    assert cycle_window(ms(2026, 4, 1), anchor, UTC, months=3) == (
        ms(2026, 2, 28, 12),
        ms(2026, 5, 30, 12),
    )


def test_cycle_boundaries_inclusive_exclusive() -> None:
    anchor = ms(2026, 1, 31, 10)
    first = (anchor, ms(2026, 2, 28, 10))
    assert cycle_window(anchor, anchor, UTC) == first
    assert cycle_window(first[1] - 1, anchor, UTC) == first
    assert cycle_window(first[1], anchor, UTC)[0] == first[1]


def test_cycle_before_anchor_is_negative() -> None:
    anchor = ms(2026, 3, 31, 10)
    assert cycle_window(anchor - 1, anchor, UTC) == (ms(2026, 2, 28, 10), anchor)
    start, end = cycle_window(ms(2025, 6, 15), anchor, UTC)
    assert (start, end) == (ms(2025, 5, 31, 10), ms(2025, 6, 30, 10))
    assert end <= anchor


def test_cycle_anchor_in_dst_gap_month_starts_after_gap() -> None:
    # 02:30 does not exist in New York on 2026-03-08: that cycle starts at 03:00 EDT.
    anchor = ms(2026, 2, 8, 2, 30, tz=NEW_YORK)
    start, end = cycle_window(ms(2026, 3, 20), anchor, NEW_YORK)
    assert start == ms(2026, 3, 8, 7)  # 03:00 -04:00, the transition instant
    assert local(end, NEW_YORK) == datetime(2026, 4, 8, 2, 30)


def test_cycle_anchor_on_second_ambiguous_occurrence() -> None:
    # The anchor is 01:30 EST, the second 01:30 of 2026-11-01; cycle 0 still starts at it.
    anchor = ms(2026, 11, 1, 1, 30, tz=NEW_YORK, fold=1)
    assert anchor == ms(2026, 11, 1, 6, 30)
    assert cycle_window(anchor, anchor, NEW_YORK) == (anchor, ms(2026, 12, 1, 6, 30))
    assert cycle_window(anchor - 1, anchor, NEW_YORK) == (ms(2026, 10, 1, 5, 30), anchor)


def test_cycle_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = windows._wall_to_ms

    def counting(wall: datetime, tz: tzinfo) -> int:
        nonlocal calls
        calls += 1
        return real(wall, tz)

    monkeypatch.setattr(windows, "_wall_to_ms", counting)
    anchor = ms(1971, 1, 31, 11, tz=BERLIN)
    start, end = cycle_window(ms(2100, 12, 15), anchor, BERLIN)
    assert (local(start, BERLIN), local(end, BERLIN)) == (
        datetime(2100, 11, 30, 11),
        datetime(2100, 12, 31, 11),
    )
    assert calls <= 4


@pytest.mark.parametrize("months", [0, -1])
def test_cycle_rejects_bad_months(months: int) -> None:
    with pytest.raises(ValueError, match="months"):
        cycle_window(0, 0, UTC, months)


# --- properties ------------------------------------------------------------------------------

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Apia",
]
LOW, HIGH = ms(1971, 1, 1), ms(2101, 1, 1) - 1

zones = st.sampled_from(ZONES).map(get_zone)
# Raw instants, plus local wall times drawn field by field (which hit midnights, month ends
# and DST transitions far more often than uniform instants do).
instants = st.integers(LOW, HIGH)
walls = st.datetimes(datetime(1971, 1, 2), datetime(2100, 12, 30))


@st.composite
def instant_in(draw: st.DrawFn, tz: tzinfo) -> int:
    if draw(st.booleans()):
        return draw(instants)
    return to_ms(draw(walls).replace(tzinfo=tz))


def first_local_date(now: datetime, unit: str) -> datetime:
    day = datetime(now.year, now.month, now.day)
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day.replace(month=1, day=1)


@settings(max_examples=400, deadline=None)
@given(data=st.data(), tz=zones, unit=st.sampled_from(CALENDAR_UNITS))
def test_calendar_window_properties(data: st.DataObject, tz: tzinfo, unit: str) -> None:
    now = data.draw(instant_in(tz))
    start, end = calendar_window(now, unit, tz)
    assert start <= now < end
    assert calendar_window(end, unit, tz)[0] == end
    assert calendar_window(start - 1, unit, tz)[1] == start
    # The start is the first instant at or after local midnight of the window's first day.
    midnight = first_local_date(local(now, tz), unit)
    assert local(start - 1, tz) < midnight <= local(start, tz)
    if exists(midnight, tz):
        assert local(start, tz) == midnight


@settings(max_examples=400, deadline=None)
@given(data=st.data(), tz=zones, months=st.sampled_from([1, 2, 3, 6, 12]))
def test_cycle_window_properties(data: st.DataObject, tz: tzinfo, months: int) -> None:
    anchor, now = data.draw(instant_in(tz)), data.draw(instant_in(tz))
    start, end = cycle_window(now, anchor, tz, months)
    assert start <= now < end
    assert cycle_window(end, anchor, tz, months)[0] == end
    assert cycle_window(start - 1, anchor, tz, months)[1] == start
    if now >= anchor:
        assert start >= anchor
    else:
        assert end <= anchor

    a, s = local(anchor, tz), local(start, tz)
    assert ((s.year - a.year) * 12 + s.month - a.month) % months == 0
    day = min(a.day, calendar.monthrange(s.year, s.month)[1])
    expected = a.replace(year=s.year, month=s.month, day=day)
    if exists(expected, tz):
        assert s == expected
    else:  # inside a DST gap: the cycle starts at the first instant after it
        assert local(start - 1, tz) < expected < s


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 4_000_000_000_000), min_size=1, max_size=30),
    st.sampled_from(["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe"]),
    st.integers(0, 4_000_000_000_000),
)
def test_window_cache_agrees_with_the_functions(times: list[int], zone: str, anchor: int) -> None:
    cache = WindowCache(size=3)
    tz = get_zone(zone)
    for now in sorted(times) + times:  # forwards, then jumping back and forth
        for unit in ("day", "month"):
            assert cache.calendar(now, unit, tz) == calendar_window(now, unit, tz)
        assert cache.cycle(now, anchor, tz) == cycle_window(now, anchor, tz)
