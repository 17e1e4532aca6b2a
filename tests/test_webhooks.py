"""The webhook sender, against a real HTTP receiver (uvicorn on a free port, a small ASGI app
that records what it is sent): signed deliveries, retries, a failing or hanging receiver that
delays no decision, drops counted at the queue's bound, and 8 processes on one Redis that
emit each threshold of a window exactly once in all.

The limiters' clocks are injected; the receiver's hang is real time (it is the receiver that
waits, never the limiter's clock that moves).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import FakeClock
from http_servers import uvicorn_server
from test_redis_concurrency import FROZEN
from workers import run_workers

import quota
from quota.webhooks import SIGNATURE, TIMESTAMP, AsyncWebhookSender, WebhookSender, sign, verify

SECRET = "whsec-test"
CATALOG: dict[str, Any] = {
    "name": "hooks",
    "alerts": {"used": [80, 100]},
    "plans": {
        "p": {"limits": [{"name": "rpd", "meter": "requests", "algorithm": "calendar",
                          "rate": "10/day"}]},
        "one": {"limits": [{"name": "once", "meter": "requests", "algorithm": "calendar",
                            "rate": "1/day", "alerts": [100]}]},
        "big": {"limits": [{"name": "cap", "meter": "requests", "algorithm": "calendar",
                            "rate": "400/day"}]},
    },
}  # fmt: skip


class Receiver:
    """An ASGI app recording every request it accepts (headers, body). ``fail`` requests are
    answered ``status`` first; while ``hang`` is set, requests wait."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.fail, self.status = 0, 500
        self.hang = threading.Event()
        self.attempts = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.attempts += 1
        while self.hang.is_set():
            await asyncio.sleep(0.005)  # the receiver hangs; no limiter clock moves
        status = 200
        if self.fail > 0:
            self.fail, status = self.fail - 1, self.status
        else:
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.got.append((headers, body))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def events(self) -> list[dict[str, Any]]:
        """The bodies received, each checked against its signature."""
        out = []
        for headers, body in self.got:
            assert verify(SECRET, body, headers[TIMESTAMP.lower()], headers[SIGNATURE.lower()])
            out.append(json.loads(body))
        return out


class _Swap:
    """The module's one server: each test installs a fresh Receiver behind it."""

    def __init__(self) -> None:
        self.target = Receiver()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.target(scope, receive, send)


@pytest.fixture(scope="module")
def receiving() -> Iterator[tuple[_Swap, str]]:
    swap = _Swap()
    with uvicorn_server(swap) as url:
        yield swap, url


@pytest.fixture
def receiver(receiving: tuple[_Swap, str]) -> tuple[Receiver, str]:
    """A fresh receiver and the URL it answers."""
    swap, url = receiving
    swap.target = Receiver()
    return swap.target, f"{url}/hooks"


def test_sign_and_verify() -> None:
    body = b'{"a":1}'
    sig = sign(SECRET, body, 1_700_000_000)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert verify(SECRET, body, "1700000000", sig, now=1_700_000_100)
    assert not verify(SECRET, body + b" ", "1700000000", sig, now=1_700_000_100)
    assert not verify("other", body, "1700000000", sig, now=1_700_000_100)
    assert not verify(SECRET, body, "1700000000", sig, now=1_700_000_301)  # stale
    assert not verify(SECRET, body, "1700000001", sig, now=1_700_000_100)
    assert not verify(SECRET, body, "soon", sig)


def test_delivers_signed_events(receiver: tuple[Receiver, str], clock: FakeClock) -> None:
    recv, url = receiver
    with WebhookSender(url, SECRET) as sender:
        limiter = quota.Limiter(quota.Catalog.load(CATALOG), clock=clock, alerts=sender)
        who = quota.Principal(account="acct", plan="p")
        decisions = [limiter.acquire(who, {"requests": 1}) for _ in range(10)]
    events = recv.events()
    assert [(e["limit"], e["threshold"], e["used"]) for e in events] == [
        ("rpd", 80, 8),
        ("rpd", 100, 10),
    ]
    assert events[0]["type"] == "quota.alert" and events[0]["account"] == "acct"
    assert events[0]["at"] == decisions[7].now and decisions[7].alerts[0].threshold == 80
    assert sender.stats.as_dict() == {
        "queued": 2,
        "sent": 2,
        "retried": 0,
        "failed": 0,
        "dropped": 0,
    }


def test_retries_with_backoff(receiver: tuple[Receiver, str], clock: FakeClock) -> None:
    recv, url = receiver
    recv.fail = 2
    with WebhookSender(url, SECRET, backoff=0.01) as sender:
        limiter = quota.Limiter(quota.Catalog.load(CATALOG), clock=clock, alerts=sender)
        limiter.acquire(quota.Principal(account="a", plan="one"), {"requests": 1})
    assert len(recv.events()) == 1 and recv.attempts == 3
    assert (sender.stats.sent, sender.stats.retried, sender.stats.failed) == (1, 2, 0)
    recv.fail, recv.status = 1, 400  # refused as it is: not retried
    with WebhookSender(url, SECRET, backoff=0.01) as sender:
        limiter = quota.Limiter(quota.Catalog.load(CATALOG), clock=clock, alerts=sender)
        limiter.acquire(quota.Principal(account="b", plan="one"), {"requests": 1})
    assert (sender.stats.sent, sender.stats.retried, sender.stats.failed) == (0, 0, 1)


def test_hanging_receiver_delays_no_decision(
    receiver: tuple[Receiver, str], clock: FakeClock
) -> None:
    """While the receiver hangs, decisions take no longer; events wait up to the queue's
    bound, the rest are dropped and counted; once it answers, every queued one arrives."""
    recv, url = receiver
    recv.hang.set()
    sender = WebhookSender(url, SECRET, queue_size=5, timeout=30)
    limiter = quota.Limiter(quota.Catalog.load(CATALOG), clock=clock, alerts=sender)
    slowest = 0.0
    for i in range(40):  # every account's first request reaches 100% of its "once"
        start = time.perf_counter()
        d = limiter.acquire(quota.Principal(account=f"a{i}", plan="one"), {"requests": 1})
        slowest = max(slowest, time.perf_counter() - start)
        assert d.allowed and len(d.alerts) == 1
    assert slowest < 2.0  # loose: a loaded 2-core machine; a blocked sender would take 30 s
    stats = sender.stats
    assert stats.queued + stats.dropped == 40 and stats.queued <= 6 and stats.dropped >= 34
    recv.hang.clear()
    sender.close(timeout=10)
    assert len(recv.events()) == stats.queued == stats.sent  # none lost below the bound


def test_async_sender(receiver: tuple[Receiver, str], clock: FakeClock) -> None:
    recv, url = receiver

    async def main() -> AsyncWebhookSender:
        sender = AsyncWebhookSender(url, SECRET)
        async with quota.AsyncLimiter(
            quota.Catalog.load(CATALOG), clock=clock, alerts=sender
        ) as lim:
            for _ in range(10):
                await lim.acquire(quota.Principal(account="x", plan="p"), {"requests": 1})
        await sender.aclose()
        return sender

    sender = asyncio.run(main())
    assert [e["threshold"] for e in recv.events()] == [80, 100] and sender.stats.sent == 2


def test_urllib_fallback(receiver: tuple[Receiver, str]) -> None:
    """Without httpx the sender posts with urllib: the same request, signed alike."""
    recv, url = receiver
    sender = WebhookSender(url, SECRET)
    assert sender._urllib(b'{"k":1}') == 200
    assert recv.events() == [{"k": 1}]
    assert sender._urllib(b"{}") == 200 and WebhookSender(url + "x", SECRET).poster()
    assert WebhookSender("http://127.0.0.1:1/", SECRET, timeout=1)._urllib(b"{}") is None


def frozen() -> float:
    return FROZEN


def hammer(url: str, hook: str, index: int, barrier: Any, results: Any) -> None:
    """One worker process: its own limiter and sender, 60 requests on one account."""
    try:
        sender = WebhookSender(hook, SECRET)
        with quota.Limiter(quota.Catalog.load(CATALOG), url, clock=frozen, alerts=sender) as lim:
            who = quota.Principal(account="shared", plan="big")
            lim.peek(who)  # connect first
            barrier.wait(timeout=30)
            admitted = sum(lim.acquire(who, {"requests": 1}).allowed for _ in range(60))
        sender.close(timeout=20)
        results.put((index, admitted, sender.stats.as_dict(), None))
    except BaseException:
        results.put((index, None, None, traceback.format_exc()))


def test_processes_emit_each_threshold_once(
    receiver: tuple[Receiver, str], redis_port: int
) -> None:
    """8 processes hammer one account across 80% and 100% of its daily cap: one 80% and one
    100% event in all, each signed."""
    recv, hook = receiver
    url = f"redis://127.0.0.1:{redis_port}/0?prefix=hooks{time.monotonic_ns()}"
    got = run_workers(hammer, lambda i: (url, hook, i), 8)
    assert [g[3] for g in got] == [None] * 8, [g[3] for g in got if g[3]]
    assert sum(g[1] for g in got) == 400  # 480 attempts on a cap of 400
    events = sorted((e["threshold"], e["used"]) for e in recv.events())  # any arrival order
    assert events == [(80, 320), (100, 400)]
    assert sum(g[2]["sent"] for g in got) == 2
