"""The hook a limiter reports to: every decision, and every call to its store; and, when the
observer has the optional ``alert`` method (``AlertObserver``), every threshold alert.

Kept free of any dependency so the core install stays small; ``quota.metrics`` implements it
with Prometheus (the ``[metrics]`` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .alerts import Alert
    from .decision import Decision


class Observer(Protocol):
    """Receives what a limiter did. Must be cheap and must not raise."""

    def decision(self, decision: Decision, plan: str, seconds: float) -> None:
        """One acquire answered (by the store, the block cache, or the failure policy) in
        ``seconds`` of wall time."""
        ...

    def backend_call(self, operation: str, seconds: float, ok: bool) -> None:
        """One call to the store (``acquire``, ``settle``, ``peek``, ...), failed or not."""
        ...


class AlertObserver(Observer, Protocol):
    """An observer that also takes threshold alerts (``quota.alerts``). The method is
    optional: a limiter calls ``alert`` only on observers that have it."""

    def alert(self, event: Alert) -> None:
        """A threshold one decision newly reached (once per window per limit state), called
        right after the decision, on the caller's thread: queue it, never block."""
        ...
