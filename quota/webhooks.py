"""Threshold alerts delivered as signed webhooks, off the request path.

``WebhookSender`` (a background thread: for ``Limiter``) and ``AsyncWebhookSender`` (an
asyncio task: for ``AsyncLimiter``) are alert sinks: ``Limiter(..., alerts=sender)``. A
decision only puts its events in a bounded queue (never blocking, never failing: a full
queue drops the event and counts it, ``sender.stats.dropped``); the sender POSTs each as
JSON, signed, retrying failures with exponential backoff.

The signature is ``X-Quota-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`` with
``X-Quota-Timestamp: <epoch seconds>``; a receiver checks both with ``verify`` (which refuses
a timestamp further than ``tolerance`` seconds from its clock: a replayed request goes stale).
Each event carries an ``id`` that stays the same across retries, so a receiver can drop the
duplicate of a delivery whose answer was lost. httpx is used when installed, else urllib.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .alerts import Alert
from .signatures import SIGNATURE, TIMESTAMP, sign, verify

__all__ = [
    "SIGNATURE",
    "TIMESTAMP",
    "AsyncWebhookSender",
    "Stats",
    "WebhookSender",
    "payload",
    "sign",
    "verify",
]

#: Answers not worth retrying: the receiver refuses this request as it is.
_FINAL = frozenset(range(400, 500)) - {408, 425, 429}


@dataclass(slots=True)
class Stats:
    """What a sender did: events queued, delivered, retried (attempts after a failure),
    failed (given up after the retries, or refused with a 4xx), dropped (queue full)."""

    queued: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def payload(event: Alert) -> bytes:
    """The JSON body of one event (with its delivery ``id``)."""
    body = {"type": "quota.alert", "id": uuid.uuid4().hex, **event.as_dict()}
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


class _Delivery:
    """What both senders share: the target, signing, the retry schedule, the counts.

    ``queue_size`` events wait at most (more are dropped and counted); each is tried
    ``1 + retries`` times, ``backoff`` seconds before the first retry, doubling up to
    ``max_backoff``; ``timeout`` bounds each attempt; ``clock`` stamps the signatures."""

    def __init__(
        self,
        url: str,
        secret: str | bytes,
        *,
        queue_size: int = 1000,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a webhook URL is http:// or https://, got {url!r}")
        if queue_size < 1 or retries < 0 or backoff < 0 or timeout <= 0:
            raise ValueError("queue_size >= 1, retries >= 0, backoff >= 0 and timeout > 0")
        self.url, self.secret, self.queue_size = url, secret, queue_size
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.timeout, self.clock = timeout, clock
        self.stats = Stats()
        self._ready()

    def _ready(self) -> None:
        """What a sender sets up beside the options (its queue)."""

    def headers(self, body: bytes) -> dict[str, str]:
        ts = int(self.clock())
        return {
            "Content-Type": "application/json",
            TIMESTAMP: str(ts),
            SIGNATURE: sign(self.secret, body, ts),
        }

    def delay(self, attempt: int) -> float:
        """Seconds before retry ``attempt`` (1, 2, ...): doubling, capped."""
        return float(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))

    def settled(self, status: int | None, attempt: int) -> bool:
        """Count one attempt's answer (None: no answer); True when the event is done with."""
        if status is not None and 200 <= status < 300:
            self.stats.sent += 1
            return True
        if (status is not None and status in _FINAL) or attempt >= self.retries:
            self.stats.failed += 1
            return True
        self.stats.retried += 1
        return False

    def poster(self) -> tuple[Callable[[bytes], int | None], Callable[[], None]]:
        """A blocking POST of one body (its status, None on no answer; httpx's client when
        installed, else urllib) and how to close it."""
        try:
            import httpx
        except ImportError:
            return self._urllib, lambda: None
        client = httpx.Client(timeout=self.timeout)

        def post(body: bytes) -> int | None:
            try:
                return client.post(self.url, content=body, headers=self.headers(body)).status_code
            except httpx.HTTPError:
                return None

        return post, client.close

    def _urllib(self, body: bytes) -> int | None:
        request = urllib.request.Request(self.url, body, self.headers(body), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except (OSError, ValueError):
            return None


class WebhookSender(_Delivery):
    """Posts alerts from a background thread (started at the first event): an alert sink
    for ``Limiter`` (``alerts=sender``; any thread may call ``alert``). ``close()`` delivers
    what is queued (within its ``timeout``) and stops the thread."""

    def _ready(self) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(self.queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def alert(self, event: Alert) -> None:
        """Queue ``event`` for delivery; never blocks (a full queue drops it, counted)."""
        try:
            self._queue.put_nowait(payload(event))
        except queue.Full:
            self.stats.dropped += 1
            return
        self.stats.queued += 1
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="quota-webhooks", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        post, close = self.poster()
        try:
            while True:
                body = self._queue.get()
                if body is None:
                    return
                self._deliver(post, body)
        finally:
            close()

    def _deliver(self, post: Callable[[bytes], int | None], body: bytes) -> None:
        attempt = 0
        while not self.settled(post(body), attempt):
            attempt += 1
            if self._stop.wait(self.delay(attempt)):  # closing: no more waiting
                self.stats.failed += 1
                return

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, for at most ``timeout`` seconds, then stop."""
        thread = self._thread
        if thread is None:
            self._stop.set()
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        thread.join(timeout)
        self._stop.set()

    def __enter__(self) -> WebhookSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncWebhookSender(_Delivery):
    """``WebhookSender`` as an asyncio task (started at the first event, in the running
    loop): an alert sink for ``AsyncLimiter``. Posts with httpx's async client when
    installed, else urllib in a worker thread. ``await sender.aclose()`` delivers what is
    queued (within its ``timeout``) and stops the task."""

    def _ready(self) -> None:
        self._queue: asyncio.Queue[bytes | None] | None = None
        self._task: asyncio.Task[None] | None = None

    def alert(self, event: Alert) -> None:
        """Queue ``event`` (from the loop's thread); never blocks, never raises."""
        if self._queue is None:
            self._queue = asyncio.Queue(self.queue_size)
        try:
            self._queue.put_nowait(payload(event))
        except asyncio.QueueFull:
            self.stats.dropped += 1
            return
        self.stats.queued += 1
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(self._queue))

    async def _run(self, waiting: asyncio.Queue[bytes | None]) -> None:
        post, close = await self._poster()
        try:
            while (body := await waiting.get()) is not None:
                attempt = 0
                while not self.settled(await post(body), attempt):
                    attempt += 1
                    await asyncio.sleep(self.delay(attempt))
        finally:
            await close()

    async def _poster(self) -> tuple[Callable[[bytes], Any], Callable[[], Any]]:
        try:
            import httpx
        except ImportError:

            async def threaded(body: bytes) -> int | None:
                return await asyncio.to_thread(self._urllib, body)

            async def nothing() -> None:
                return None

            return threaded, nothing
        client = httpx.AsyncClient(timeout=self.timeout)

        async def post(body: bytes) -> int | None:
            try:
                reply = await client.post(self.url, content=body, headers=self.headers(body))
            except httpx.HTTPError:
                return None
            return reply.status_code

        return post, client.aclose

    async def aclose(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, for at most ``timeout`` seconds, then stop."""
        task, waiting = self._task, self._queue
        if task is None or waiting is None:
            return
        try:
            await asyncio.wait_for(waiting.put(None), timeout)
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            self.stats.failed += waiting.qsize()
