"""Prometheus metrics: the observer's counters against real decisions, and the /metrics endpoint
of a running gateway (in-process uvicorn, and ``quota serve --metrics`` as a subprocess)."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from conftest import FakeClock
from http_servers import quota_serve, uvicorn_server
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import quota
from quota.cli.serve import Gateway, demo_keys
from quota.metrics import PrometheusMetrics, metrics_app, with_metrics

ZYLO = quota.Catalog.load("zylo")
CHAT = "/v1/chat/completions"


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition as {(name, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def decisions(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> Counter[tuple]:
    """quota_decisions_total as {(plan, limit, outcome): count}."""
    out: Counter[tuple] = Counter()
    for (name, labels), value in samples.items():
        if name == "quota_decisions_total":
            d = dict(labels)
            out[(d["plan"], d["limit"], d["outcome"])] = int(value)
    return out


def test_counters_match_the_decisions_of_a_limiter(clock: FakeClock) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    limiter = quota.Limiter(ZYLO, "memory://", clock=clock, observer=metrics)
    basic = quota.Principal(account="a", plan="basic")
    seen: Counter[tuple[str, str, str]] = Counter()
    cached = 0
    for i in range(13):
        d = limiter.acquire(basic, {"requests": 1, "tokens": 100})
        seen[("basic", d.denied_by or "none", "allowed" if d.allowed else "denied")] += 1
        cached += d.source == "cache"  # a denial repeated from the in-process block cache
        clock.advance(0.5 if i < 11 else 0)
    d = limiter.acquire(basic, {"requests": 1}, model="gpt-5.5")  # 403 before any charge
    seen[("basic", d.denied_by or "none", "denied")] += 1
    assert seen == {("basic", "none", "allowed"): 10, ("basic", "rpm", "denied"): 3,
                    ("basic", "model", "denied"): 1}  # fmt: skip

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    for (plan, limit, outcome), n in seen.items():
        assert value("quota_decisions_total", plan=plan, limit=limit, outcome=outcome) == n
    assert value("quota_decision_duration_seconds_count", plan="basic") == 14
    # Neither the entitlement denial nor the cached denials reached the store.
    assert cached > 0
    assert value("quota_cache_hits_total", plan="basic", limit="rpm") == cached
    assert value("quota_backend_duration_seconds_count", operation="acquire") == 13 - cached
    assert value("quota_backend_errors_total", operation="acquire") is None
    assert value("quota_fallbacks_total", plan="basic", mode="local") is None


def test_fallbacks_cache_hits_and_shadow_denials_by_source(clock: FakeClock) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry, namespace="gw")
    who = quota.Principal(account="a", plan="go")
    for source, allowed in [("local", True), ("local", False), ("allow", True), ("deny", False)]:
        d = quota.Decision(allowed, 200 if allowed else 503, who, 0.0, source=source,
                           denied_by=None if allowed else "rpd")  # fmt: skip
        metrics.decision(d, "go", 0.001)
    metrics.decision(
        quota.Decision(False, 429, who, 0.0, source="cache", denied_by="search"), "go", 1e-5
    )
    metrics.decision(quota.Decision(True, 200, who, 0.0, shadow_denied=("tpd", "rpd")), "go", 1e-4)
    metrics.backend_call("acquire", 0.2, False)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("gw_fallbacks_total", plan="go", mode="local") == 2
    assert value("gw_fallbacks_total", plan="go", mode="allow") == 1
    assert value("gw_fallbacks_total", plan="go", mode="deny") == 1
    assert value("gw_cache_hits_total", plan="go", limit="search") == 1
    assert value("gw_shadow_denials_total", plan="go", limit="tpd") == 1
    assert value("gw_shadow_denials_total", plan="go", limit="rpd") == 1
    assert value("gw_decisions_total", plan="go", limit="rpd", outcome="denied") == 2
    assert value("gw_decisions_total", plan="go", limit="none", outcome="allowed") == 3
    assert value("gw_backend_errors_total", operation="acquire") == 1
    assert value("gw_backend_duration_seconds_bucket", operation="acquire", le="0.25") == 1
    assert value("gw_backend_duration_seconds_bucket", operation="acquire", le="0.1") == 0


def test_missing_prometheus_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(quota.ConfigError, match=r"pip install 'quota\[metrics\]'"):
        PrometheusMetrics()
    with pytest.raises(quota.ConfigError, match="prometheus-client"):
        metrics_app()


@pytest.fixture
def gateway() -> Iterator[tuple[str, CollectorRegistry]]:
    """`quota serve`'s app with metrics under a real uvicorn, on a fake clock."""
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    clock = FakeClock()
    limiter = quota.AsyncLimiter(ZYLO, "memory://", clock=clock, observer=metrics)
    app = Gateway(limiter, demo_keys(ZYLO, clock.now), metrics)
    with uvicorn_server(app) as url:
        yield url, registry


def test_a_running_gateway_serves_metrics_matching_its_decisions(
    gateway: tuple[str, CollectorRegistry],
) -> None:
    url, _ = gateway
    expected: Counter[tuple[str, str, str]] = Counter()
    statuses: Counter[int] = Counter()
    traffic = (
        [("basic", "llama-3.1-8b")] * 12 + [("basic", "gpt-5.5")] * 2 + [("go", "gpt-5.5")] * 3
    )
    with httpx.Client(base_url=url) as client:
        for plan, model in traffic:
            r = client.post(
                CHAT,
                headers={"Authorization": f"Bearer sk-{plan}"},
                json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
            )
            statuses[r.status_code] += 1
            denied = r.json()["error"] if r.status_code != 200 else None
            limit = "none"
            if denied is not None:
                limit = {"model_not_allowed": "model"}.get(denied["code"], "rpm")
            expected[(plan, limit, "allowed" if denied is None else "denied")] += 1
        assert client.get(f"{url}/v1/models").status_code == 401  # no key: no decision
        scraped = client.get("/metrics")  # no API key needed, never charged
    assert statuses == {200: 13, 429: 2, 403: 2}
    assert expected == {
        ("basic", "none", "allowed"): 10,
        ("basic", "rpm", "denied"): 2,
        ("basic", "model", "denied"): 2,
        ("go", "none", "allowed"): 3,
    }
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    samples = scrape(scraped.text)
    assert decisions(samples) == expected
    assert samples[("quota_decision_duration_seconds_count", (("plan", "basic"),))] == 14
    # 15 decisions needed the store (not the 403s), less those the block cache answered.
    cached = samples.get(("quota_cache_hits_total", (("limit", "rpm"), ("plan", "basic"))), 0)
    assert samples[("quota_backend_duration_seconds_count", (("operation", "acquire"),))] == (
        15 - cached
    )


def test_with_metrics_routes_only_its_path(gateway: tuple[str, CollectorRegistry]) -> None:
    url, registry = gateway
    assert callable(with_metrics(metrics_app(registry), registry, path="/m"))
    r = httpx.get(f"{url}/metrics/extra")  # not the metrics path: the middleware answers
    assert r.status_code == 401


def test_quota_serve_with_metrics() -> None:
    with quota_serve("--metrics") as child:
        url = child.url
        body = {"model": "llama-3.1-8b", "messages": [{"role": "user", "content": "hello"}]}
        for _ in range(11):
            httpx.post(f"{url}{CHAT}", headers={"Authorization": "Bearer sk-basic"}, json=body)
        samples = scrape(httpx.get(f"{url}/metrics").text)
    out, port = child.output, child.port
    assert decisions(samples) == {("basic", "none", "allowed"): 10, ("basic", "rpm", "denied"): 1}
    assert any(name.startswith("process_") for name, _ in samples)  # the global registry
    assert f"Prometheus metrics at http://127.0.0.1:{port}/metrics" in out


def test_alerts_are_counted_by_plan_limit_kind_and_threshold(clock: FakeClock) -> None:
    """``PrometheusMetrics.alert``: the observer's optional method, one count per alert."""
    catalog = quota.Catalog.load(
        {
            "alerts": {"used": [50, 100]},
            "plans": {"p": {"limits": [{"name": "rpd", "meter": "requests", "rate": "4/day"}]}},
        }
    )
    registry = CollectorRegistry()
    limiter = quota.Limiter(catalog, "memory://", clock=clock, observer=PrometheusMetrics(registry))
    who = quota.Principal(account="a", plan="p")
    assert sum(len(limiter.acquire(who, {"requests": 1}).alerts) for _ in range(6)) == 2
    for threshold in ("50", "100"):
        labels = {"plan": "p", "limit": "rpd", "kind": "used", "threshold": threshold}
        assert registry.get_sample_value("quota_alerts_total", labels) == 1
