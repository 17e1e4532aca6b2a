"""Starlette behind ``quota.QuotaMiddleware``, with Prometheus metrics at ``/metrics``
(``pip install 'quota[metrics]'``) outside the middleware, so scrapes need no API key.

    uv run python examples/starlette_app.py                               # a scripted client
    uv run uvicorn --app-dir examples starlette_app:gateway --port 8000   # serve it
"""

from __future__ import annotations

import datetime as dt

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import quota
from quota.metrics import PrometheusMetrics, with_metrics

registry = CollectorRegistry()  # or leave it out: prometheus_client's global registry
metrics = PrometheusMetrics(registry)
limiter = quota.AsyncLimiter("zyla", "memory://", observer=metrics)


SIGNED_UP = dt.datetime.now(dt.timezone.utc)  # the trial's start (from your accounts table)


def lookup_key(key: str) -> quota.Principal | None:  # sync resolvers work too
    if key == "sk-trial":  # Zyla's trial: 50 calls within 7 days of signing up
        return quota.Principal(account="acct_t", plan="trial", cycle_start=SIGNED_UP)
    return None


async def lookup(request: Request) -> JSONResponse:
    decision = request.scope["quota"].decision  # what the middleware decided, for the app
    return JSONResponse({"ok": True, "remaining": decision.states[0].remaining})


app = Starlette(routes=[Route("/v1/lookup", lookup, methods=["POST"])])
app.add_middleware(quota.QuotaMiddleware, limiter=limiter, resolve=lookup_key)
gateway = with_metrics(app, registry)  # /metrics answered in front of the middleware


if __name__ == "__main__":
    from starlette.testclient import TestClient

    with TestClient(gateway) as client:
        for _ in range(3):
            r = client.post("/v1/lookup", json={}, headers={"X-API-Key": "sk-trial"})
            print(r.status_code, r.json(), r.headers["x-zyla-api-calls-monthly-remaining"])
        print(client.post("/v1/lookup", json={}, headers={"X-API-Key": "sk-nope"}).status_code)
        scraped = client.get("/metrics").text
        print("\n".join(x for x in scraped.splitlines() if x.startswith("quota_decisions_total")))
