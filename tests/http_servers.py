"""Real HTTP servers for the middleware tests: uvicorn in a thread on a free port, and a raw
socket client for requests that httpx would refuse to send. No mocks anywhere."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

import quota
from quota.asgi.types import ASGIApp, Receive, Scope, Send
from quota.backends.memory import AsyncMemoryBackend

#: Engines the HTTP tests run on (``conftest.storage_url`` turns one into a URL).
BACKENDS = ["memory", "redis"]


class AppSlot:
    """An ASGI app whose target is swapped per test, so one server serves a whole module."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            raise RuntimeError("no app installed in the slot")
        await self.app(scope, receive, send)


@contextmanager
def uvicorn_server(app: ASGIApp) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port in a thread; yield its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_level="critical",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.005)  # waiting for the server thread, not moving test time
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def wait_until_listening(proc: subprocess.Popen[str], port: int, seconds: float = 20) -> None:
    """Return once ``proc`` accepts connections on ``port``; RuntimeError when it exits first
    or takes longer than ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("quota serve did not start") from None
            time.sleep(0.05)  # waiting for the child process, not moving test time


@dataclass
class ServeProcess:
    """A `quota serve` child process: where it listens, and what it printed once stopped."""

    port: int
    url: str
    output: str = ""


@contextmanager
def quota_serve(*args: str) -> Iterator[ServeProcess]:
    """Run ``python -m quota serve --port <free> *args`` until the block ends."""
    from servers import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "quota", "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    child = ServeProcess(port, f"http://127.0.0.1:{port}")
    try:
        wait_until_listening(proc, port)
        yield child
    finally:
        proc.terminate()
        child.output, _ = proc.communicate(timeout=10)


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_request(base_url: str, request: bytes, timeout: float = 5.0) -> RawResponse:
    """Send ``request`` bytes as they are (``Connection: close`` expected) and parse the reply."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as conn:
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
    return RawResponse(int(lines[0].split()[1]), headers, body)


def limiter_pair(
    catalog: quota.Catalog, url: str, clock: Any
) -> tuple[quota.AsyncLimiter, quota.Limiter]:
    """An AsyncLimiter for the server and a sync Limiter on the same state for the test's
    ``peek`` (the memory engine is shared; other engines share their server)."""
    if url == "memory://":
        # Not AsyncMemoryBackend(engine): it drops an empty engine (MemoryBackend has __len__).
        shared = AsyncMemoryBackend()
        return (
            quota.AsyncLimiter(catalog, shared, clock=clock),
            quota.Limiter(catalog, shared.engine, clock=clock),
        )
    return quota.AsyncLimiter(catalog, url, clock=clock), quota.Limiter(catalog, url, clock=clock)
