"""Waiting instead of failing: the pauses of ``acquire(..., wait=seconds)``.

A batch job that would rather pace itself than handle 429s asks the limiter to wait: after a
denial that can succeed, the limiter sleeps the denial's exact ``retry_after`` and tries again
(with the same ``request_id``), as long as the total stays within ``wait``. The limiters
hand their ``acquire`` and their sleep (``time.sleep``, ``asyncio.sleep`` or the injected
``sleep``) to ``paced`` / ``paced_async``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable
from typing import Any

from .decision import Decision
from .errors import CostError

__all__ = ["Pacer", "paced", "paced_async", "wait_budget"]

#: Statuses of denials that waiting cannot cure: a balance (402), an entitlement (403), the
#: store unavailable under a fail-closed policy (503).
_FINAL_STATUSES = frozenset({402, 403, 503})


def wait_budget(wait: object) -> int:
    """``acquire``'s ``wait`` in whole milliseconds (CostError unless a number >= 0)."""
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait < math.inf:
        raise CostError(f"wait must be a non-negative number of seconds, got {wait!r}")
    return math.floor(round(wait * 1000, 6))


class Pacer:
    """The pauses of one waiting ``acquire``: after a denial that can succeed, its exact
    ``retry_after``, as long as the retry falls within ``wait`` of the first decision, both
    on the decisions' clock (``now``) and in the time slept (so a clock that sleeping does not
    move cannot make it wait longer). Denials that cannot succeed are final at once: no
    ``retry_after`` (a cost above the capacity, a spent trial), 402, 403, the failure policy's
    503."""

    def __init__(self, first: Decision, wait_ms: int) -> None:
        self.deadline = round(first.now * 1000) + wait_ms
        self.left = wait_ms

    def delay(self, decision: Decision) -> float | None:
        """Seconds to sleep before trying again after ``decision``; None: answer with it."""
        retry = decision.retry_after
        if decision.allowed or retry is None or decision.status in _FINAL_STATUSES:
            return None
        if decision.source == "deny":
            return None
        retry = max(retry, 0.001)  # a denial always waits: no loop without a pause
        due = math.ceil(round(retry * 1000, 6))
        if round(decision.now * 1000) + due > self.deadline or due > self.left:
            return None
        self.left -= due
        return retry


def paced(acquire: Callable[[], Decision], sleep: Callable[[float], Any], wait_ms: int) -> Decision:
    """``acquire()`` tried again after each retry-after that fits in ``wait_ms``."""
    decision = acquire()
    pacer = Pacer(decision, wait_ms)
    while (delay := pacer.delay(decision)) is not None:
        sleep(delay)
        decision = acquire()
    return decision


async def paced_async(
    acquire: Callable[[], Awaitable[Decision]], sleep: Callable[[float], Any], wait_ms: int
) -> Decision:
    """``paced`` for the asyncio limiter; ``sleep`` may be a coroutine function or a plain
    one."""
    decision = await acquire()
    pacer = Pacer(decision, wait_ms)
    while (delay := pacer.delay(decision)) is not None:
        slept = sleep(delay)
        if inspect.isawaitable(slept):
            await slept
        decision = await acquire()
    return decision
