"""OpenTelemetry and models per plan: what a gateway's operators see, and what its clients may
call.

uv run python examples/observability.py

The OpenTelemetry observer (``pip install 'quota[otel]'``) records every decision and store
call; here the SDK keeps them in memory so the example can print them (a real gateway gives
the SDK an exporter). The middleware answers ``GET /v1/models`` from the catalog with only the
models the caller's plan may call.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import quota
from quota.otel import OpenTelemetryObserver

reader, spans = InMemoryMetricReader(), InMemorySpanExporter()
tracing = TracerProvider()
tracing.add_span_processor(SimpleSpanProcessor(spans))
observer = OpenTelemetryObserver(MeterProvider(metric_readers=[reader]), tracing)

now = 1_767_225_600.0  # 2026-01-01T00:00:00Z
limiter = quota.AsyncLimiter("zylo", "memory://", clock=lambda: now, observer=observer)
KEYS = {
    "sk-basic": quota.Principal(account="acct_b", plan="basic", key="sk-basic"),
    "sk-go": quota.Principal(account="acct_g", plan="go", key="sk-go"),
}


async def upstream(scope: Any, receive: Any, send: Any) -> None:
    """The app behind the gateway: a chat completion for every call that gets through."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b'{"usage": {"total_tokens": 12}}'})


gateway = quota.QuotaMiddleware(
    upstream, limiter=limiter, resolve=KEYS.get, models=["llama-3.1-8b"]
)


async def main() -> None:
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        for key in KEYS:
            auth = {"Authorization": f"Bearer {key}"}
            listed = (await http.get("/v1/models", headers=auth)).json()
            print(f"{key} may call: {', '.join(m['id'] for m in listed['data'])}")
        auth = {"Authorization": "Bearer sk-basic"}
        body = {"model": "llama-3.1-8b", "messages": [{"role": "user", "content": "hi"}]}
        codes = [(await http.post("/v1/chat/completions", json=body, headers=auth)).status_code
                 for _ in range(11)]  # fmt: skip
        print(f"sk-basic, 11 chats: {codes.count(200)} x 200, {codes.count(429)} x 429")


asyncio.run(main())
data = reader.get_metrics_data()
for resource in data.resource_metrics if data else ():
    for scope in resource.scope_metrics:
        for metric in scope.metrics:
            if metric.name == "quota.decisions":
                for point in sorted(metric.data.data_points, key=lambda p: -p.value):
                    labels = dict(point.attributes)
                    print(
                        f"quota.decisions {labels['outcome']} by {labels['limit']}: {point.value}"
                    )
names = sorted({s.name for s in spans.get_finished_spans()})
print(f"spans: {', '.join(names)}")
