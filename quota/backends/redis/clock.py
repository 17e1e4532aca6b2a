"""The Redis server's clock as the engines read it: local time corrected by an offset that
``TIME`` measures at first use and again every minute.

Every gateway host of a fleet then decides on one time (the server's), whatever its own clock
says; a failed measurement is retried after a few seconds, the last offset kept meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

__all__ = ["ServerClock"]


class ServerClock:
    """Epoch seconds on the server's clock: ``time.time()`` plus an offset measured by TIME."""

    REFRESH = 60.0  # seconds between measurements
    RETRY = 5.0  # seconds before measuring again after a failure

    def __init__(self) -> None:
        self.offset = 0.0
        self.due = 0.0  # time.monotonic() at which to measure again
        self.measured = False

    def __call__(self) -> float:
        return time.time() + self.offset

    @property
    def stale(self) -> bool:
        return time.monotonic() >= self.due

    def update(self, before: float, reply: Sequence[Any], after: float) -> None:
        """Record a TIME reply taken between local times ``before`` and ``after``."""
        server = int(reply[0]) + int(reply[1]) / 1e6
        self.offset = server - (before + after) / 2
        self.due = time.monotonic() + self.REFRESH
        self.measured = True

    def failed(self) -> None:
        self.due = time.monotonic() + self.RETRY
