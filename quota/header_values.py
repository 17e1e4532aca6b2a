"""How header values are written: Go durations (OpenAI's ``x-ratelimit-reset-*``), whole
seconds, counts, and structured-field strings (RFC 9651, the IETF ``RateLimit`` fields)."""

from __future__ import annotations

import math

__all__ = ["ceil_seconds", "count", "go_duration", "sf_string"]


#: go_duration's recent answers by input: resets repeat (a sliding window's admitted reset is
#: its whole window; a day's counts down by the request), so most renders are one lookup.
_DURATIONS: dict[float, str] = {}


def go_duration(seconds: float) -> str:
    """``seconds`` as Go's ``time.Duration.String()`` at millisecond resolution.

    Rounds to the nearest millisecond; "0s", "500ms", "1.5s", "6m0s", "1h2m3s" (no day unit,
    hours may exceed 24). Negative inputs clamp to "0s": a reset is never in the past.
    """
    text = _DURATIONS.get(seconds)
    if text is None:
        if len(_DURATIONS) >= 4096:
            _DURATIONS.clear()
        text = _DURATIONS[seconds] = _go_duration(seconds)
    return text


def _go_duration(seconds: float) -> str:
    ms = max(0, math.floor(seconds * 1000 + 0.5))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, frac = divmod(rest, 1000)
    text = f"{secs}.{frac:03d}".rstrip("0") if frac else str(secs)
    text += "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def ceil_seconds(seconds: float) -> int:
    """Whole seconds, rounded up, never negative."""
    return max(0, math.ceil(seconds))


def count(value: int) -> str:
    """A count as a decimal string, floored at 0 (headers never carry negatives)."""
    return str(max(0, int(value)))


def sf_string(text: str) -> str:
    """``text`` as a structured-field String (RFC 9651 3.3.3): printable ASCII, quoted."""
    if any(not (0x20 <= ord(c) <= 0x7E) for c in text):
        raise ValueError(f"{text!r} is not printable ASCII, so not a structured-field string")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
