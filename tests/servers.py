"""Real Redis servers for tests: started on a free port from a fixture, stopped after.

Never a mock: fakeredis may join as an extra engine in differential tests, not as a stand-in.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server(*args: str) -> Iterator[int]:
    """Run ``redis-server`` on a free loopback port with no persistence; yield the port."""
    binary = shutil.which("redis-server")
    if binary is None:  # CI installs it (.ci/run); a test that needs Redis must not skip
        raise RuntimeError("redis-server is not on PATH: install it (apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="quota-redis-") as workdir:
        port = free_port()
        cmd = [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            *args,
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                        conn.sendall(b"PING\r\n")
                        if conn.recv(16).startswith(b"+PONG"):
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {port}")
                time.sleep(0.02)  # waiting for a child process, not moving test time
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=10)
