"""Prometheus metrics for a limiter: an ``Observer`` (see ``quota.observe``) and a ``/metrics``
endpoint for an ASGI gateway.

``prometheus-client`` is the ``[metrics]`` extra (``pip install 'quota[metrics]'``); it is imported
when a ``PrometheusMetrics`` or a metrics app is built, never by ``import quota``.

    metrics = PrometheusMetrics()                      # the default registry
    limiter = quota.AsyncLimiter(catalog, url, observer=metrics)
    app = with_metrics(quota.QuotaMiddleware(upstream, limiter=limiter, resolve=...))

Metric names (namespace ``quota``, base units, ``_total`` counters):

- ``quota_decisions_total{plan, limit, outcome}``: every acquire; ``limit`` is the denying limit
  (``denied_by``: a limit name, ``model`` or ``feature:<name>``) or ``none`` when admitted;
  ``outcome`` is ``allowed`` or ``denied``.
- ``quota_decision_duration_seconds{plan}``: wall time of an acquire, planning included.
- ``quota_backend_duration_seconds{operation}``: wall time of each call to the store.
- ``quota_backend_errors_total{operation}``: calls to the store that failed.
- ``quota_fallbacks_total{plan, mode}``: decisions taken by the failure policy while the store
  failed (``mode``: ``local``, ``allow`` or ``deny``).
- ``quota_cache_hits_total{plan, limit}``: denials answered by the in-process block cache.
- ``quota_shadow_denials_total{plan, limit}``: shadow-mode limits that would have denied.
- ``quota_alerts_total{plan, limit, kind, threshold}``: threshold alerts (``quota.alerts``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .asgi.types import ASGIApp, Receive, Scope, Send
from .errors import ConfigError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .alerts import Alert
    from .decision import Decision

#: Latency buckets in seconds: an in-process decision takes tens of microseconds, a Redis round
#: trip a fraction of a millisecond to a few; the top buckets catch timeouts.
LATENCY_BUCKETS = (
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip

#: ``Decision.source`` values that mean the failure policy decided instead of the store.
FALLBACK_SOURCES = frozenset({"local", "allow", "deny"})


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigError(
            "quota metrics need prometheus-client: pip install 'quota[metrics]'"
            " (or pip install prometheus-client)"
        ) from None
    return prometheus_client


class PrometheusMetrics:
    """An ``Observer`` that counts decisions, fallbacks, cache hits and shadow denials and times
    the store, in a Prometheus ``registry`` (default: prometheus_client's global one).

    Cheap and exception-free on the hot path: label children are cached per label set.
    """

    def __init__(self, registry: CollectorRegistry | None = None, namespace: str = "quota") -> None:
        pc = _prometheus()
        self.registry: CollectorRegistry = pc.REGISTRY if registry is None else registry
        common: dict[str, Any] = {"namespace": namespace, "registry": self.registry}
        self.decisions = pc.Counter(
            "decisions",
            "Acquire decisions by plan, denying limit ('none' when admitted) and outcome.",
            ["plan", "limit", "outcome"],
            **common,
        )
        self.decision_seconds = pc.Histogram(
            "decision_duration_seconds",
            "Wall time of one acquire, planning and store call included.",
            ["plan"],
            buckets=LATENCY_BUCKETS,
            **common,
        )
        self.backend_seconds = pc.Histogram(
            "backend_duration_seconds",
            "Wall time of one call to the store, by operation.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            **common,
        )
        self.backend_errors = pc.Counter(
            "backend_errors",
            "Calls to the store that failed, by operation.",
            ["operation"],
            **common,
        )
        self.fallbacks = pc.Counter(
            "fallbacks",
            "Decisions taken by the failure policy (local, allow or deny) instead of the store.",
            ["plan", "mode"],
            **common,
        )
        self.cache_hits = pc.Counter(
            "cache_hits",
            "Denials answered by the in-process block cache without a store round trip.",
            ["plan", "limit"],
            **common,
        )
        self.shadow_denials = pc.Counter(
            "shadow_denials",
            "Shadow-mode limits that would have denied a request (the request went on).",
            ["plan", "limit"],
            **common,
        )
        self.alerts = pc.Counter(
            "alerts",
            "Threshold alerts (quota.alerts) by plan, limit and kind; the threshold as declared.",
            ["plan", "limit", "kind", "threshold"],
            **common,
        )
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def decision(self, decision: Decision, plan: str, seconds: float) -> None:
        """Count one acquire (see the module docstring for what goes where)."""
        if decision.allowed:
            self._child(self.decisions, plan, "none", "allowed").inc()
        else:
            self._child(self.decisions, plan, decision.denied_by or "unknown", "denied").inc()
        self._child(self.decision_seconds, plan).observe(seconds)
        source = decision.source
        if source in FALLBACK_SOURCES:
            self._child(self.fallbacks, plan, source).inc()
        elif source == "cache":
            self._child(self.cache_hits, plan, decision.denied_by or "unknown").inc()
        for name in decision.shadow_denied:
            self._child(self.shadow_denials, plan, name).inc()

    def alert(self, event: Alert) -> None:
        """One threshold alert (the observer's optional ``alert``): counted by plan, limit,
        kind and declared threshold, all names and numbers of the catalog."""
        labels = (event.plan, event.limit, event.kind, str(event.threshold))
        self._child(self.alerts, *labels).inc()

    def backend_call(self, operation: str, seconds: float, ok: bool) -> None:
        """Time one store call; count it as an error when it failed."""
        self._child(self.backend_seconds, operation).observe(seconds)
        if not ok:
            self._child(self.backend_errors, operation).inc()


def metrics_app(registry: CollectorRegistry | None = None) -> ASGIApp:
    """An ASGI app answering the Prometheus exposition of ``registry`` (default: the global
    one) on any path; mount it at ``/metrics`` or use ``with_metrics``."""
    pc = _prometheus()
    app: ASGIApp = pc.make_asgi_app(pc.REGISTRY if registry is None else registry)
    return app


def with_metrics(
    app: ASGIApp, registry: CollectorRegistry | None = None, path: str = "/metrics"
) -> ASGIApp:
    """``app`` with ``path`` answered by ``metrics_app(registry)`` in front of it, so a scrape
    needs no API key and is never counted against a plan."""
    exposition = metrics_app(registry)

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") == path:
            await exposition(scope, receive, send)
        else:
            await app(scope, receive, send)

    return router
