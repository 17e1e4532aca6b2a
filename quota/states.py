"""What a decision, a peek or a top-up reports of each limit: ``LimitState``, and which binds."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class LimitState(NamedTuple):
    """One limit as a decision (or a peek) saw it. Times are in seconds.

    ``remaining``: what is left (after this request's charge when it was admitted).
    ``reset_after``: seconds until the meter is fully replenished (0.0 when nothing is used).
    ``retry_after``: seconds until this request's cost would fit; 0.0 when it fits now, None
    when it never will (cost above capacity, a spent trial, an empty balance).
    ``window``: the policy's window in seconds (None for balances and concurrency).
    """

    name: str
    meter: str
    algorithm: str
    limit: int
    remaining: int
    reset_after: float
    retry_after: float | None
    window: float | None
    scope: str
    allowed: bool = True
    status: int = 429
    code: str = "rate_limit_exceeded"


def binding(states: Iterable[LimitState]) -> LimitState | None:
    """The state that binds: fewest remaining, then longest reset. None when there are none."""
    return min(states, key=lambda s: (s.remaining, -s.reset_after), default=None)
