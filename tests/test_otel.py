"""The OpenTelemetry observer against real decisions: the SDK's in-memory metric reader and span
exporter (no mocks), a limiter on the memory engine, an AsyncLimiter on a real redis-server,
and a redis-server killed under a limiter to see store errors and fallbacks counted."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeClock
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from servers import RedisProcess

import quota
from quota.backends.breaker import Breaker
from quota.metrics import LATENCY_BUCKETS
from quota.otel import OpenTelemetryObserver

ROOT = Path(__file__).resolve().parent.parent
ZYLO = quota.Catalog.load("zylo")
FAILING = quota.Catalog.load(
    {
        "plans": {
            "p": {
                "limits": [
                    {"name": "rpm", "meter": "requests", "rate": "5/minute"},
                    {"name": "tpm", "meter": "tokens", "rate": "1000/minute", "on_error": "local"},
                    {"name": "credits", "meter": "credits", "algorithm": "balance", "grant": 100},
                ]
            }
        }
    }
)
Labels = tuple[tuple[str, str], ...]


class Telemetry:
    """An observer on SDK providers whose output stays in memory, and readers for it."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.observer = OpenTelemetryObserver(
            MeterProvider(metric_readers=[self.reader]), self.tracer_provider
        )

    def points(self, name: str) -> dict[Labels, Any]:
        """The data points of instrument ``name`` by their sorted attributes."""
        out: dict[Labels, Any] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                assert scope.scope.name == "quota"
                for metric in scope.metrics:
                    if metric.name == name:
                        for p in metric.data.data_points:
                            out[tuple(sorted(p.attributes.items()))] = p
        return out

    def counts(self, name: str) -> dict[Labels, int]:
        """A counter's values, or a histogram's counts, by attributes."""
        return {k: getattr(p, "value", None) or p.count for k, p in self.points(name).items()}

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if name in (None, s.name)]


def labels(**kw: str) -> Labels:
    return tuple(sorted(kw.items()))


def test_counts_and_spans_match_the_decisions_of_a_limiter(clock: FakeClock) -> None:
    t = Telemetry()
    limiter = quota.Limiter(ZYLO, "memory://", clock=clock, observer=t.observer)
    basic = quota.Principal(account="acct-private-7", plan="basic", key="sk-private-key")
    seen: Counter[Labels] = Counter()
    cached = 0
    for i in range(13):
        d = limiter.acquire(basic, {"requests": 1, "tokens": 100})
        outcome = "allowed" if d.allowed else "denied"
        seen[labels(plan="basic", limit=d.denied_by or "none", outcome=outcome)] += 1
        cached += d.source == "cache"
        clock.advance(0.5 if i < 11 else 0)
    d = limiter.acquire(basic, {"requests": 1}, model="gpt-5.5")  # 403 before any store call
    seen[labels(plan="basic", limit="model", outcome="denied")] += 1
    assert sorted(seen.values()) == [1, 3, 10] and cached > 0

    assert t.counts("quota.decisions") == seen
    assert t.counts("quota.decision.duration") == {labels(plan="basic"): 14}
    assert t.counts("quota.cache_hits") == {labels(plan="basic", limit="rpm"): cached}
    assert t.counts("quota.backend.duration") == {labels(operation="acquire"): 13 - cached}
    assert t.points("quota.backend.errors") == t.points("quota.fallbacks") == {}
    (histogram,) = t.points("quota.decision.duration").values()
    assert tuple(histogram.explicit_bounds) == LATENCY_BUCKETS  # seconds, not the SDK default

    decisions = t.spans("quota.decision")
    assert len(decisions) == 14 and len(t.spans("quota.backend.acquire")) == 13 - cached
    by_outcome = Counter(
        tuple(s.attributes.get(f"quota.{a}") for a in ("outcome", "denied_by", "source"))
        for s in decisions
    )
    assert by_outcome == {
        ("allowed", None, "engine"): 10,
        ("denied", "rpm", "engine"): 3 - cached,
        ("denied", "rpm", "cache"): cached,
        ("denied", "model", "engine"): 1,
    }
    assert {s.attributes["quota.plan"] for s in decisions} == {"basic"}
    assert {s.attributes["quota.status"] for s in decisions} == {200, 429, 403}
    for span in t.spans():  # bounded attributes only: never the account or the key
        assert span.end_time is not None and span.start_time is not None
        assert span.end_time >= span.start_time
        assert not any("private" in str(v) for v in span.attributes.values())
    flat = str([t.points(n) for n in ("quota.decisions", "quota.cache_hits")])
    assert "private" not in flat


def test_sources_shadow_denials_and_span_times() -> None:
    t = Telemetry()
    obs = t.observer
    who = quota.Principal(account="a", plan="go")
    for source, allowed in [("local", True), ("local", False), ("allow", True), ("deny", False)]:
        d = quota.Decision(allowed, 200 if allowed else 503, who, 0.0, source=source,
                           denied_by=None if allowed else "rpd")  # fmt: skip
        obs.decision(d, "go", 0.001)
    obs.decision(quota.Decision(False, 429, who, 0.0, source="cache", denied_by="search"), "go", 0)
    obs.decision(quota.Decision(True, 200, who, 0.0, shadow_denied=("tpd", "rpd")), "go", 0.25)
    obs.backend_call("acquire", 0.2, False)
    obs.backend_call("settle", 0.0005, True)

    assert t.counts("quota.fallbacks") == {
        labels(plan="go", mode="local"): 2,
        labels(plan="go", mode="allow"): 1,
        labels(plan="go", mode="deny"): 1,
    }
    assert t.counts("quota.cache_hits") == {labels(plan="go", limit="search"): 1}
    assert t.counts("quota.shadow_denials") == {
        labels(plan="go", limit="tpd"): 1,
        labels(plan="go", limit="rpd"): 1,
    }
    assert t.counts("quota.decisions") == {
        labels(plan="go", limit="rpd", outcome="denied"): 2,
        labels(plan="go", limit="search", outcome="denied"): 1,
        labels(plan="go", limit="none", outcome="allowed"): 3,
    }
    assert t.counts("quota.backend.errors") == {labels(operation="acquire"): 1}
    assert t.counts("quota.backend.duration") == {
        labels(operation="acquire"): 1,
        labels(operation="settle"): 1,
    }
    (shadowed,) = [s for s in t.spans("quota.decision") if "quota.shadow_denied" in s.attributes]
    assert tuple(shadowed.attributes["quota.shadow_denied"]) == ("tpd", "rpd")
    assert shadowed.end_time - shadowed.start_time == 250_000_000  # the decision's own seconds
    failed, settled = t.spans("quota.backend.acquire")[0], t.spans("quota.backend.settle")[0]
    assert failed.end_time - failed.start_time == 200_000_000
    assert failed.status.status_code is StatusCode.ERROR
    assert settled.status.status_code is StatusCode.UNSET
    assert settled.attributes["quota.operation"] == "settle"


def test_a_store_failure_counts_errors_and_fallbacks_by_policy() -> None:
    t = Telemetry()
    who = quota.Principal(account="acct", plan="p")
    with RedisProcess() as server:
        url = f"redis://127.0.0.1:{server.port}/0?prefix=otel"
        breaker = Breaker(100, 1.0, FakeClock(0))  # stays closed: every call tries the store
        lim = quota.Limiter(FAILING, url, clock=FakeClock(), breaker=breaker, observer=t.observer)
        assert lim.acquire(who, {"requests": 1}).source == "engine"
        server.kill()
        sources = [
            lim.acquire(who, {"requests": 1}).source,  # rpm: allow
            lim.acquire(who, {"requests": 1, "credits": 5}).source,  # a balance: deny
            lim.acquire(who, {"tokens": 10}).source,  # tpm: on_error = "local"
            lim.acquire(who, {"tokens": 10}).source,
        ]
        lim.close()
    assert sources == ["allow", "deny", "local", "local"]
    assert t.counts("quota.backend.errors") == {labels(operation="acquire"): 4}
    assert t.counts("quota.backend.duration") == {labels(operation="acquire"): 5}
    assert t.counts("quota.fallbacks") == {
        labels(plan="p", mode="allow"): 1,
        labels(plan="p", mode="deny"): 1,
        labels(plan="p", mode="local"): 2,
    }
    assert t.counts("quota.decisions") == {
        labels(plan="p", limit="none", outcome="allowed"): 4,
        labels(plan="p", limit="credits", outcome="denied"): 1,
    }
    statuses = [s.status.status_code for s in t.spans("quota.backend.acquire")]
    assert statuses == [StatusCode.UNSET] + [StatusCode.ERROR] * 4
    fallback = [s.attributes["quota.source"] for s in t.spans("quota.decision")]
    assert fallback == ["engine", *sources]


def test_async_limiter_on_redis_nests_its_spans_in_the_current_one(redis_port: int) -> None:
    t = Telemetry()
    url = f"redis://127.0.0.1:{redis_port}/0?prefix=otel-async"
    tracer = t.tracer_provider.get_tracer("gateway")
    go = quota.Principal(account="acct-go", plan="go")
    basic = quota.Principal(account="acct-basic", plan="basic")

    async def traffic() -> list[int]:
        limiter = quota.AsyncLimiter(ZYLO, url, clock=FakeClock(), observer=t.observer)
        try:
            with tracer.start_as_current_span("request"):
                statuses = [(await limiter.acquire(go, {"requests": 1}, model="gpt-5.5")).status]
            statuses.append((await limiter.acquire(basic, {"requests": 1}, model="gpt-5.5")).status)
            statuses.append((await limiter.acquire(basic, {"requests": 1})).status)
            return statuses
        finally:
            await limiter.close()

    assert asyncio.run(traffic()) == [200, 403, 200]
    assert t.counts("quota.decisions") == {
        labels(plan="go", limit="none", outcome="allowed"): 1,
        labels(plan="basic", limit="model", outcome="denied"): 1,
        labels(plan="basic", limit="none", outcome="allowed"): 1,
    }
    assert t.counts("quota.backend.duration") == {labels(operation="acquire"): 2}
    (request,) = t.spans("request")
    inside = [s for s in t.spans() if s.parent is not None]
    assert {s.name for s in inside} == {"quota.decision", "quota.backend.acquire"}
    assert all(s.parent.span_id == request.context.span_id for s in inside)  # type: ignore[union-attr]
    assert len(t.spans("quota.decision")) == 3


def test_the_observer_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    t = Telemetry()
    with caplog.at_level(logging.WARNING, logger="quota.otel"):
        t.observer.decision(None, "p", 0.1)  # type: ignore[arg-type]
        t.observer.decision("not a decision", "p", 0.1)  # type: ignore[arg-type]
        t.observer.backend_call("acquire", "soon", True)  # type: ignore[arg-type]
    assert [r.name for r in caplog.records] == ["quota.otel"]  # logged once, then quiet


def test_without_the_extra_import_works_and_building_names_it() -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if opentelemetry-api were not installed\n"
        "import quota.otel\n"
        "try:\n"
        "    quota.otel.OpenTelemetryObserver()\n"
        "except quota.ConfigError as exc:\n"
        "    print(exc)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "pip install 'quota[otel]'" in run.stdout
    assert "opentelemetry-api" in run.stdout


ALERTING = quota.Catalog.load(
    {
        "alerts": {"used": [50, 100]},
        "plans": {"p": {"limits": [{"name": "rpd", "meter": "requests", "rate": "4/day"}]}},
    }
)


def test_alerts_are_counted_by_plan_limit_kind_and_threshold(clock: FakeClock) -> None:
    """The observer's optional ``alert``: the 50% and the 100% of a daily cap, once each."""
    t = Telemetry()
    with quota.Limiter(ALERTING, "memory://", clock=clock, observer=t.observer) as lim:
        who = quota.Principal(account="a", plan="p")
        got = [lim.acquire(who, {"requests": 1}) for _ in range(5)]
    assert [len(d.alerts) for d in got] == [0, 1, 0, 1, 0]
    base = (("kind", "used"), ("limit", "rpd"), ("plan", "p"))
    assert t.counts("quota.alerts") == {
        tuple(sorted((*base, ("threshold", "50")))): 1,
        tuple(sorted((*base, ("threshold", "100")))): 1,
    }
