"""QuotaMiddleware's overhead against the bare app, in-process on the memory engine.

Drives the ASGI apps directly (a minimal scope/receive/send loop, no server, no sockets), so
the figures are the middleware's own cost: key lookup (cached), body read and replay, JSON
parse, classification, one acquire, header injection, usage parsing and one settle.

    uv run python -m benchmarks.middleware [--requests N] [--repeat R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import quota
from quota.asgi.responses import send_json
from quota.asgi.types import ASGIApp, Message, Receive, Scope, Send
from quota.cli.upstream import StandInUpstream

BODY = {
    "model": "llama-3.1-8b",
    "max_tokens": 256,
    "messages": [
        {"role": "system", "content": "You are a helpful assistant. " * 8},
        {"role": "user", "content": "Summarise the plot of a long novel in three sentences. " * 4},
    ],
}
STEP_MS = 60_000  # a minute between requests: within every daily cap of the go plan


async def minimal(scope: Scope, receive: Receive, send: Send) -> None:
    """The cheapest possible JSON endpoint: read the body, answer a constant with usage."""
    while (await receive()).get("more_body", False):
        pass
    await send_json(send, 200, {"usage": {"prompt_tokens": 60, "completion_tokens": 20}})


class Clock:
    def __init__(self) -> None:
        self.ms = 1_767_225_600_000  # 2026-01-01T00:00:00Z

    def __call__(self) -> float:
        return self.ms / 1000


async def drive(app: ASGIApp, body: bytes, n: int, tick: Callable[[], None]) -> float:
    """Seconds to run ``n`` requests through ``app``; every response must be a 200."""
    headers = [
        (b"authorization", b"Bearer sk-bench"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    statuses: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    start = time.perf_counter()
    for _ in range(n):
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await app(dict(scope), receive, send)
        tick()
    elapsed = time.perf_counter() - start
    if set(statuses) != {200}:
        raise RuntimeError(f"unexpected statuses: {sorted(set(statuses))}")
    return elapsed


def wrap(app: ASGIApp, clock: Clock) -> ASGIApp:
    limiter = quota.AsyncLimiter(quota.Catalog.load("zylo"), "memory://", clock=clock)
    who = quota.Principal(account="acct-bench", plan="go")
    return quota.QuotaMiddleware(app, limiter=limiter, resolve={"sk-bench": who}.get)


def measure(name: str, app: ASGIApp, body: bytes, n: int, repeat: int) -> tuple[str, float, float]:
    """Best-of-``repeat`` requests/s for the bare and the wrapped app."""
    clock = Clock()

    def tick() -> None:
        clock.ms += STEP_MS

    wrapped = wrap(app, clock)
    bare_best = wrapped_best = float("inf")
    for _ in range(repeat):
        bare_best = min(bare_best, asyncio.run(drive(app, body, n, tick)))
        wrapped_best = min(wrapped_best, asyncio.run(drive(wrapped, body, n, tick)))
    return name, n / bare_best, n / wrapped_best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best counts")
    args = parser.parse_args(argv)
    plain = json.dumps(BODY).encode()
    stream = json.dumps({**BODY, "stream": True, "stream_options": {"include_usage": True}})
    rows = [
        measure("minimal JSON app", minimal, plain, args.requests, args.repeat),
        measure("stand-in upstream, JSON", StandInUpstream(), plain, args.requests, args.repeat),
        measure(
            "stand-in upstream, SSE", StandInUpstream(), stream.encode(), args.requests, args.repeat
        ),
    ]
    print(
        f"QuotaMiddleware overhead: in-process, memory://, Zylo plan 'go', {len(plain)}-byte chat"
        f" body, {args.requests} requests per run, best of {args.repeat}"
    )
    print(f"{'app':<26} {'bare req/s':>11} {'wrapped req/s':>14} {'ratio':>6} {'added us/req':>13}")
    for name, bare, wrapped in rows:
        added = (1 / wrapped - 1 / bare) * 1e6
        print(f"{name:<26} {bare:>11,.0f} {wrapped:>14,.0f} {wrapped / bare:>6.2f} {added:>13.1f}")


if __name__ == "__main__":
    main()
