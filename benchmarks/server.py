"""A throwaway ``redis-server`` for the benchmarks: a free loopback port, no persistence.

Deliberately independent of ``tests/``: the benchmarks must run from a plain checkout.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if b"PONG" in conn.recv(64):
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not start on port {port}")
        time.sleep(0.02)


@contextmanager
def redis_server() -> Iterator[int]:
    """Run ``redis-server`` on a free port for the duration of the block; yield the port."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on PATH: install it (apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="quota-bench-redis-") as workdir:
        port = free_port()
        cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "no", "--dir", workdir, "--databases", "16"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_ready(proc, port)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def version(port: int) -> str:
    import redis

    client: Any = redis.Redis(port=port)
    info: dict[str, Any] = client.info("server")
    return str(info["redis_version"])


def command_count(client: Any) -> int:
    """Commands the server has executed so far (INFO commandstats) except INFO itself.

    Commands a script runs count too: an EVALSHA running three commands counts four."""
    stats: dict[str, Any] = client.info("commandstats")
    return sum(
        int(v["calls"])
        for k, v in stats.items()
        if k.startswith("cmdstat_") and k != "cmdstat_info"
    )
