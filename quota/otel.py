"""OpenTelemetry for a limiter: an ``Observer`` (see ``quota.observe``) that records every
decision and every store call as metrics and spans, through the OpenTelemetry API only.

``opentelemetry-api`` (1.30 or later, for the histograms' bucket advice) is the ``[otel]``
extra (``pip install 'quota[otel]'``); it is imported when an ``OpenTelemetryObserver`` is
built, never by ``import quota``. The application brings the SDK and its exporters (OTLP,
Prometheus, ...) and either installs global providers or passes them in:

    observer = OpenTelemetryObserver()                 # the global meter and tracer providers
    limiter = quota.AsyncLimiter(catalog, url, observer=observer)

Instruments (meter ``quota``), the same measurements and bounded attributes as
``quota.metrics``; OpenTelemetry's Prometheus name translation (dots to underscores, then
``_seconds``, ``_total``) gives the names ``PrometheusMetrics`` uses:

- ``quota.decisions{plan, limit, outcome}`` (counter): every acquire; ``limit`` is the denying
  limit (``rpm``, ``model``, ``feature:tools``, ...) or ``none``; ``outcome`` ``allowed`` or
  ``denied``.
- ``quota.decision.duration{plan}`` (histogram, s): wall time of an acquire, planning included.
- ``quota.backend.duration{operation}`` (histogram, s): wall time of each store call.
- ``quota.backend.errors{operation}`` (counter): store calls that failed.
- ``quota.fallbacks{plan, mode}`` (counter): decisions the failure policy took (``local``,
  ``allow``, ``deny``).
- ``quota.cache_hits{plan, limit}`` (counter): denials answered by the block cache.
- ``quota.shadow_denials{plan, limit}`` (counter): shadow-mode limits that would have denied.
- ``quota.alerts{plan, limit, kind, threshold}`` (counter): threshold alerts.

Spans (tracer ``quota``), children of whatever span is current (the request's, under an
instrumented server): ``quota.decision`` per acquire, with ``quota.plan``, ``quota.outcome``,
``quota.source``, ``quota.status``, and ``quota.denied_by`` / ``quota.shadow_denied`` when
set; ``quota.backend.<operation>`` per store call, with ``quota.operation`` and an error status
when it failed. The observer is told after the fact, so each span is made with explicit start
and end times: it ends when the observer hears of it and lasts the measured seconds. No
attribute ever holds an account, a key or anything else a request chooses.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .metrics import FALLBACK_SOURCES, LATENCY_BUCKETS

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from .alerts import Alert
    from .decision import Decision

log = logging.getLogger("quota.otel")

#: The instrumentation scope: the meter's and the tracer's name.
SCOPE = "quota"


def _api() -> tuple[Any, Any]:
    """The ``opentelemetry.metrics`` and ``opentelemetry.trace`` modules, or a ConfigError
    naming the extra."""
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        raise ConfigError(
            "quota's OpenTelemetry observer needs opentelemetry-api: pip install 'quota[otel]'"
            " (or pip install opentelemetry-api)"
        ) from None
    return metrics, trace


class OpenTelemetryObserver:
    """An ``Observer`` recording decisions and store calls as OpenTelemetry metrics and spans
    (see the module docstring), on ``meter_provider`` and ``tracer_provider`` (default: the
    global ones; pass ``opentelemetry.trace.NoOpTracerProvider()`` for metrics only).

    Cheap and exception-free on the hot path: attribute sets are built once per label set, and
    anything the SDK raises is swallowed (logged once on the ``quota.otel`` logger).
    """

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        from . import __version__

        metrics, trace = _api()
        meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
        self._error_status = trace.Status(trace.StatusCode.ERROR, "the store call failed")
        self._instruments(meter)
        self._attributes: dict[tuple[str, ...], dict[str, str]] = {}
        self._span_names: dict[str, str] = {}
        self._warned = False

    def _instruments(self, meter: Any) -> None:
        """Create the counters and histograms (names and units in the module docstring)."""
        timing: dict[str, Any] = {
            "unit": "s",
            "explicit_bucket_boundaries_advisory": LATENCY_BUCKETS,
        }
        self.decisions = meter.create_counter(
            "quota.decisions",
            unit="{decision}",
            description="Acquire decisions by plan, denying limit ('none' if admitted), outcome.",
        )
        self.decision_seconds = meter.create_histogram(
            "quota.decision.duration",
            description="Wall time of one acquire, planning and store call included.",
            **timing,
        )
        self.backend_seconds = meter.create_histogram(
            "quota.backend.duration",
            description="Wall time of one call to the store, by operation.",
            **timing,
        )
        self.backend_errors = meter.create_counter(
            "quota.backend.errors",
            unit="{call}",
            description="Calls to the store that failed, by operation.",
        )
        self.fallbacks = meter.create_counter(
            "quota.fallbacks",
            unit="{decision}",
            description="Decisions taken by the failure policy (local, allow or deny).",
        )
        self.cache_hits = meter.create_counter(
            "quota.cache_hits",
            unit="{decision}",
            description="Denials answered by the in-process block cache without a store call.",
        )
        self.shadow_denials = meter.create_counter(
            "quota.shadow_denials",
            unit="{denial}",
            description="Shadow-mode limits that would have denied a request (it went on).",
        )
        self.alerts = meter.create_counter(
            "quota.alerts",
            unit="{alert}",
            description="Threshold alerts by plan, limit, kind and declared threshold.",
        )

    def _labels(self, *pairs: str) -> dict[str, str]:
        """The attribute dict of ``name, value, name, value...``, built once per label set."""
        found = self._attributes.get(pairs)
        if found is None:
            found = self._attributes[pairs] = dict(zip(pairs[::2], pairs[1::2], strict=True))
        return found

    def decision(self, decision: Decision, plan: str, seconds: float) -> None:
        """Count and time one acquire, and record its span."""
        try:
            self._count(decision, plan, seconds)
            self._span("quota.decision", seconds, self._decision_attributes(decision, plan))
        except Exception:
            self._swallow()

    def _count(self, decision: Decision, plan: str, seconds: float) -> None:
        denied_by = decision.denied_by or "unknown"
        if decision.allowed:
            self.decisions.add(1, self._labels("plan", plan, "limit", "none", "outcome", "allowed"))
        else:
            self.decisions.add(
                1, self._labels("plan", plan, "limit", denied_by, "outcome", "denied")
            )
        self.decision_seconds.record(seconds, self._labels("plan", plan))
        source = decision.source
        if source in FALLBACK_SOURCES:
            self.fallbacks.add(1, self._labels("plan", plan, "mode", source))
        elif source == "cache":
            self.cache_hits.add(1, self._labels("plan", plan, "limit", denied_by))
        for name in decision.shadow_denied:
            self.shadow_denials.add(1, self._labels("plan", plan, "limit", name))

    @staticmethod
    def _decision_attributes(decision: Decision, plan: str) -> dict[str, Any]:
        """A decision span's attributes: catalog names and fixed words only."""
        attributes: dict[str, Any] = {
            "quota.plan": plan,
            "quota.outcome": "allowed" if decision.allowed else "denied",
            "quota.source": decision.source,
            "quota.status": decision.status,
        }
        if decision.denied_by is not None:
            attributes["quota.denied_by"] = decision.denied_by
        if decision.shadow_denied:
            attributes["quota.shadow_denied"] = list(decision.shadow_denied)
        return attributes

    def alert(self, event: Alert) -> None:
        """Count one threshold alert (catalog names and declared numbers only)."""
        try:
            labels = ("plan", event.plan, "limit", event.limit, "kind", event.kind)
            self.alerts.add(1, self._labels(*labels, "threshold", str(event.threshold)))
        except Exception:
            self._swallow()

    def backend_call(self, operation: str, seconds: float, ok: bool) -> None:
        """Time one store call (an error when it failed), and record its span."""
        try:
            labels = self._labels("operation", operation)
            self.backend_seconds.record(seconds, labels)
            if not ok:
                self.backend_errors.add(1, labels)
            name = self._span_names.get(operation)
            if name is None:
                name = self._span_names[operation] = f"quota.backend.{operation}"
            self._span(name, seconds, {"quota.operation": operation}, ok)
        except Exception:
            self._swallow()

    def _span(self, name: str, seconds: float, attributes: dict[str, Any], ok: bool = True) -> None:
        """A span that ended now and lasted ``seconds`` (the observer is told after the fact)."""
        end = time.time_ns()
        start = end - max(0, round(seconds * 1e9))
        span = self.tracer.start_span(name, attributes=attributes, start_time=start)
        if not ok:
            span.set_status(self._error_status)
        span.end(end_time=end)

    def _swallow(self) -> None:
        """An observer must not raise: log the first failure, drop the rest."""
        if not self._warned:
            self._warned = True
            log.warning(
                "quota: the OpenTelemetry observer failed (later failures are not logged)",
                exc_info=True,
            )


__all__ = ["SCOPE", "OpenTelemetryObserver"]
