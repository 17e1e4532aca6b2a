"""Real Redis servers for tests: started on a free port from a fixture, stopped after.

Never a mock: fakeredis may join as an extra engine in differential tests, not as a stand-in.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(
    proc: subprocess.Popen[bytes], port: int, ask: bytes, expect: bytes, what: str
) -> None:
    """Wait until the child answers ``ask`` on ``port`` with a reply containing ``expect``."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(ask)
                if expect in conn.recv(256):
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start on port {port}")
        time.sleep(0.02)  # waiting for a child process, not moving test time


@contextmanager
def redis_server(*args: str, port: int | None = None) -> Iterator[int]:
    """Run ``redis-server`` on a free loopback port with no persistence; yield the port."""
    binary = shutil.which("redis-server")
    if binary is None:  # CI installs it (.ci/run); a test that needs Redis must not skip
        raise RuntimeError("redis-server is not on PATH: install it (apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="quota-redis-") as workdir:
        port = port or free_port()
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
            _wait_for(proc, port, b"PING\r\n", b"+PONG", "redis-server")
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _cli(*args: str) -> str:
    binary = shutil.which("redis-cli")
    if binary is None:
        raise RuntimeError("redis-cli is not on PATH: install it (apt-get install redis-server)")
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"redis-cli {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


@contextmanager
def redis_cluster(masters: int = 3, replicas: int = 0) -> Iterator[list[int]]:
    """A real Redis Cluster on loopback (``masters`` x (1 + ``replicas``) servers); yield the
    ports, masters first once the cluster reports ``cluster_state:ok`` on every node."""
    with ExitStack() as stack:
        ports = [
            stack.enter_context(
                redis_server(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-port",
                    str(free_port()),
                    "--cluster-node-timeout",
                    "2000",
                )
            )
            for _ in range(masters * (1 + replicas))
        ]
        nodes = [f"127.0.0.1:{p}" for p in ports]
        _cli("--cluster", "create", *nodes, "--cluster-replicas", str(replicas), "--cluster-yes")
        deadline = time.monotonic() + 30
        while True:
            infos = [_cli("-p", str(p), "cluster", "info") for p in ports]
            if all("cluster_state:ok" in info for info in infos):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the test cluster did not reach cluster_state:ok")
            time.sleep(0.05)  # waiting for the servers to agree, not moving test time
        yield ports


@contextmanager
def redis_sentinel(master_port: int, service: str = "mymaster") -> Iterator[int]:
    """Run one ``redis-server --sentinel`` watching the master on ``master_port`` (quorum 1)
    on a free loopback port; yield its port once it names the master of ``service``."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not on PATH: install it (apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="quota-sentinel-") as workdir:
        port = free_port()
        conf = f"{workdir}/sentinel.conf"
        with open(conf, "w") as f:  # sentinel rewrites its file: it must be writable
            f.write(
                f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
                f"sentinel monitor {service} 127.0.0.1 {master_port} 1\n"
                f"sentinel down-after-milliseconds {service} 5000\n"
            )
        proc = subprocess.Popen(
            [binary, conf, "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        ask = f"*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n${len(service)}\r\n"
        ask += f"{service}\r\n"
        try:
            _wait_for(proc, port, ask.encode(), str(master_port).encode(), "redis sentinel")
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def make_tls_certs(workdir: str) -> dict[str, str]:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost, made with ``openssl``
    in ``workdir``; returns the paths (``ca``, ``cert``, ``key``)."""
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError("openssl is not on PATH: install it (apt-get install openssl)")
    paths = {name: f"{workdir}/{name}.pem" for name in ("ca", "ca_key", "cert", "key", "csr")}
    ext = f"{workdir}/san.ext"
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*args: str) -> None:
        done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)} failed: {done.stderr}")

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=quota test CA", "-keyout", paths["ca_key"], "-out", paths["ca"])  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", paths["key"], "-out", paths["csr"])  # fmt: skip
    run("x509", "-req", "-in", paths["csr"], "-CA", paths["ca"], "-CAkey", paths["ca_key"],
        "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", paths["cert"])  # fmt: skip
    return {"ca": paths["ca"], "cert": paths["cert"], "key": paths["key"]}


@contextmanager
def redis_tls_server(certs: dict[str, str], *args: str) -> Iterator[tuple[int, int]]:
    """``redis-server`` with a TLS port (server certificate from ``make_tls_certs``; clients
    need no certificate) beside its plain port, which the fixture uses to wait and to set up;
    yields ``(plain_port, tls_port)``."""
    tls_port = free_port()
    tls = [
        "--tls-port", str(tls_port),
        "--tls-cert-file", certs["cert"],
        "--tls-key-file", certs["key"],
        "--tls-ca-cert-file", certs["ca"],
        "--tls-auth-clients", "no",
    ]  # fmt: skip
    with redis_server(*tls, *args) as port:
        yield port, tls_port


def server_pid(port: int) -> int:
    """The process id of the redis-server on ``port`` (to kill or freeze it in a test)."""
    for line in _cli("-p", str(port), "info", "server").splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":", 1)[1])
    raise RuntimeError(f"no process_id in INFO of the server on port {port}")


def wait_replicas_in_sync(ports: list[int], timeout: float = 30) -> None:
    """Wait until every replica among ``ports`` has its link to its master up and has caught
    up with the master's replication offset."""
    deadline = time.monotonic() + timeout
    while True:
        synced = True
        for port in ports:
            info = dict(
                line.split(":", 1)
                for line in _cli("-p", str(port), "info", "replication").splitlines()
                if ":" in line
            )
            if info.get("role") == "slave" and info.get("master_link_status") != "up":
                synced = False
        if synced:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the cluster's replicas did not sync with their masters")
        time.sleep(0.05)  # waiting for the servers, not moving test time


class RedisProcess:
    """A ``redis-server`` a test can kill, freeze (SIGSTOP), thaw (SIGCONT) and start again on
    the same port and data directory (so ``appendonly yes`` data survives a restart). Use it as
    a context manager: the server is stopped and the directory removed on exit."""

    def __init__(self, *args: str, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not on PATH: install it (apt-get install redis-server)"
            )
        self.binary = binary
        self.args = args
        self.port = port or free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="quota-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", self._dir.name, *self.args]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        _wait_for(self.proc, self.port, b"PING\r\n", b"+PONG", "redis-server")
        return self.port

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save (what survives is what was fsynced)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def restart(self) -> int:
        self.kill()
        return self.start()

    def __enter__(self) -> RedisProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
        self.kill()
        self._dir.cleanup()
