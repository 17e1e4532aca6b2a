"""A circuit breaker for the store, and the counters of what the failure machinery did.

The breaker is *closed* while the store answers. After ``failures`` consecutive failed calls it
*opens*: nothing is sent to the store and the failure policy answers at once. After ``cooldown``
seconds it is *half-open*: one call goes through as a probe; its success closes the breaker,
its failure opens it for another cool-down. A probe that never reports (its caller was
cancelled) is replaced by another after one more cool-down, so the breaker cannot stick.

Time comes from an injectable monotonic clock (seconds) so tests move it by hand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import ConfigError

log = logging.getLogger("quota")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class Breaker:
    """Consecutive-failure circuit breaker; thread-safe, and cheap while closed."""

    def __init__(
        self,
        failures: int = 3,
        cooldown: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
            raise ConfigError(f"breaker failures must be a positive integer, got {failures!r}")
        if not isinstance(cooldown, int | float) or cooldown <= 0:
            raise ConfigError(f"breaker cooldown must be positive seconds, got {cooldown!r}")
        self.threshold = failures
        self.cooldown = float(cooldown)
        self.clock = clock
        self.state = CLOSED
        self.failures = 0  # consecutive failures
        self.opened = 0  # times the breaker opened
        self._since = 0.0  # when it opened, or when the current probe started
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """Whether a call may go to the store now (half-open: only the one probe)."""
        if self.state == CLOSED:
            return True
        with self._lock:
            if self.state == CLOSED:
                return True
            now = self.clock()
            if now - self._since < self.cooldown:
                return False
            # Open and cooled down, or a probe that never reported: this caller probes.
            self.state = HALF_OPEN
            self._since = now
            return True

    def success(self) -> None:
        if self.state == CLOSED and not self.failures:
            return
        with self._lock:
            if self.state != CLOSED:
                log.warning("quota: the store answers again; circuit closed")
            self.state = CLOSED
            self.failures = 0

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.state == HALF_OPEN or (
                self.state == CLOSED and self.failures >= self.threshold
            ):
                if self.state == CLOSED:
                    log.warning(
                        "quota: %d store calls failed in a row; circuit open for %.3g s",
                        self.failures,
                        self.cooldown,
                    )
                self.state = OPEN
                self.opened += 1
                self._since = self.clock()

    def retry_in(self) -> float:
        """Seconds until the store is tried again (0 while closed)."""
        if self.state == CLOSED:
            return 0.0
        return max(0.0, self.cooldown - (self.clock() - self._since))


@dataclass
class GuardStats:
    """What the failure machinery did, for metrics and tests (monotonic counters).

    ``failures``: store calls that raised or ran out of time (``timeouts`` of them timed out).
    ``short_circuited``: calls answered without trying the store (breaker open or probing).
    ``decisions``: acquires answered by the failure policy, by ``Decision.source``
    (``local``, ``allow``, ``deny``). ``settles_dropped``: settles/releases the store could not
    take (the estimate stays charged). ``peeks``: peeks answered by the policy.
    """

    failures: int = 0
    timeouts: int = 0
    short_circuited: int = 0
    decisions: dict[str, int] = field(default_factory=lambda: {"local": 0, "allow": 0, "deny": 0})
    settles_dropped: int = 0
    peeks: int = 0

    def as_dict(self) -> dict[str, int]:
        """Flat counters (``decisions_local`` ...)."""
        out = {
            "failures": self.failures,
            "timeouts": self.timeouts,
            "short_circuited": self.short_circuited,
            "settles_dropped": self.settles_dropped,
            "peeks": self.peeks,
        }
        out.update({f"decisions_{k}": v for k, v in self.decisions.items()})
        return out
