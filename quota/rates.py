"""Parsing of rate strings ("10/minute", "7200 per day") and durations ("7 days", 30)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rate:
    """A parsed rate: ``amount`` per ``multiples`` x ``unit`` (``unit_seconds`` long)."""

    amount: int
    multiples: int
    unit: str
    unit_seconds: int

    @property
    def period_ms(self) -> int:
        return self.multiples * self.unit_seconds * 1000


def parse_rate(text: str) -> Rate:
    """Parse a rate in the notation of the ``limits`` package; ValueError naming the text."""
    from limits import parse

    try:
        item = parse(text)
    except ValueError as exc:
        raise ValueError(
            f"bad rate {text!r}: write it like '10/minute', '7200 per day' or '100/2 hours'"
        ) from exc
    gran = item.GRANULARITY
    return Rate(int(item.amount), int(item.multiples), str(gran.name), int(gran.seconds))


_DURATION_HINT = "write it like '7 days', '10 minutes', 'hour' or seconds"


def parse_duration_ms(value: str | int | float) -> int:
    """Milliseconds of a duration: seconds as a number, or text like '7 days', 'minute', '90 s'.
    Errors quote the value as given (not stripped), so that a message names what the file says."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"bad duration {value!r}")
    if isinstance(value, int | float):
        if not 0 < value < 1e15:  # also NaN and infinity
            raise ValueError(f"duration must be positive and finite, got {value!r}")
        return round(value * 1000)
    text = value.strip()
    parts = text.split()
    if len(parts) == 2 and parts[1] in ("s", "sec", "ms"):
        try:
            number = float(parts[0])
        except ValueError:
            raise ValueError(f"bad duration {value!r}: {_DURATION_HINT}") from None
        ms = number * (1 if parts[1] == "ms" else 1000)
        if not 0 < ms < 1e18:  # also NaN and infinity
            raise ValueError(f"duration must be positive and finite, got {value!r}")
        return round(ms)
    try:
        return parse_rate(f"1/{text}").period_ms
    except ValueError:
        raise ValueError(f"bad duration {value!r}: {_DURATION_HINT}") from None
