"""Redis memory per active account after a busy hour on the Zylo ``basic`` plan.

Limits: ``rpm`` 10/minute (sliding), ``rpd`` 7200/day, ``tpd`` 200000 tokens/day and the
per-key ``web_extract`` 10/minute. The hour: a chat request every 7.5 s (400 tokens) and a
web-extract call every 30 s, i.e. 10 requests a minute, 192 000 tokens. Time is virtual on
the client side for every library (quota: ``clock=``; pyrate-limiter: its factory's clock;
limits' moving window and throttled-py: their module's time functions, patched). Server-side
TTLs run on the real clock, so after the compressed hour each library's keys are adjusted to
what a real hour leaves: throttled-py's window keys older than their 3-period TTL are dropped,
pyrate-limiter's buckets are leaked at the hour's end (what its leaker does), and for limits'
sliding window counter the previous-window keys a real hour holds are counted (x2).
Each library runs on the flushed database 0; its keys are found with SCAN and summed with
``MEMORY USAGE key SAMPLES 0``.

    uv run --group bench python -m benchmarks.memory
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import quota

from . import peer_limits, peer_pyrate, peer_throttled
from .accuracy import VirtualTime, patched, virtual
from .shapes import ZYLO_BASIC, Shape
from .timing import Decide

RPM, RPD, TPD, EXTRACT = ZYLO_BASIC.limits
CHAT = Shape("basic", (RPM, RPD, TPD), {"requests": 1, "tokens": 400}, accounts=1)
WEB = Shape("basic", (RPM, RPD, EXTRACT), {"requests": 1, "web_extract": 1}, accounts=1)
HOUR_MS = 3_600_000


def busy_hour(start_ms: int) -> list[tuple[int, Shape]]:
    events = [(start_ms + k * 7_500, CHAT) for k in range(HOUR_MS // 7_500)]
    events += [(start_ms + 3_000 + k * 30_000, WEB) for k in range(HOUR_MS // 30_000)]
    return sorted(events, key=lambda e: e[0])


@dataclass
class Usage:
    name: str
    keys: int
    bytes: int
    admitted: int
    note: str = ""


def measure(admin: Any, match: str = "*") -> tuple[int, int]:
    keys = list(admin.scan_iter(match=match, count=1000))
    return len(keys), sum(int(admin.memory_usage(k, samples=0) or 0) for k in keys)


#: quota's row for the same limits as the peers: the Zylo catalog without its usage history.
LIMITS_ONLY = "quota, the limits only (history_days = 0)"


def _quota(url: str, vt: VirtualTime, history: bool = True) -> Callable[[Shape], Decide]:
    catalog = quota.Catalog.load("zylo")
    if not history:
        catalog = catalog.model_copy(update={"usage": type(catalog.usage)(history_days=0)})
    limiter = quota.Limiter(catalog, f"{url}?prefix=membench", clock=vt.seconds)
    who = quota.Principal(account="acct-busy", plan="basic", key="sk-busy")
    return lambda shape: lambda: limiter.acquire(who, shape.cost).allowed


def _peer(build: Callable[[Shape], tuple[Decide, Any]]) -> Callable[[Shape], Decide]:
    deciders = {id(s): build(s)[0] for s in (CHAT, WEB)}
    return lambda shape: deciders[id(shape)]


def _throttled_expired(admin: Any, end_s: int) -> None:
    """Drop window keys whose TTL (3 periods from the window's first hit) has passed."""
    for key in list(admin.scan_iter(count=1000)):
        name = key.decode()
        head, _, idx = name.rpartition(":period:")
        period = 60 if ":rpm:" in head or ":web_extract:" in head else 86_400
        if idx.isdigit() and (int(idx) + 3) * period <= end_s:
            admin.delete(key)


def _pyrate_leak(admin: Any, end_ms: int) -> None:
    for lim in ZYLO_BASIC.limits:
        bound = peer_pyrate.algorithm(lim).leak_bound([peer_pyrate.rate(lim)], end_ms)
        for key in admin.scan_iter(match=f"pyrate:{lim.name}:*"):
            admin.zremrangebyscore(key, 0, bound)


def run(port: int) -> tuple[str, list[Usage]]:
    import limits.storage.redis as lredis
    import redis

    admin = redis.Redis(port=port)
    url = f"redis://127.0.0.1:{port}/0"
    libraries: list[tuple[str, Callable[[VirtualTime], Callable[[Shape], Decide]]]] = [
        ("quota", lambda vt: _quota(url, vt)),
        (LIMITS_ONLY, lambda vt: _quota(url, vt, history=False)),
    ]

    def limits_variant(
        v: peer_limits.Variant,
    ) -> Callable[[VirtualTime], Callable[[Shape], Decide]]:
        return lambda vt: _peer(lambda s: peer_limits.sync(s, v, url))

    libraries += [(v.title, limits_variant(v)) for v in peer_limits.VARIANTS]
    libraries.append(
        (peer_throttled.TITLE, lambda vt: _peer(lambda s: peer_throttled.sync(s, url)))
    )
    libraries.append(
        (
            peer_pyrate.TITLE,
            lambda vt: _peer(lambda s: peer_pyrate.sync(s, url, clock=lambda: vt.ms, leak=False)),
        )
    )
    out = []
    for name, make in libraries:
        admin.flushall()
        vt = VirtualTime()
        vt.ms = time.time_ns() // 1_000_000
        events = busy_hour(vt.ms)
        admitted = 0
        with virtual(vt), patched(lredis, time=_FakeTime(vt)):
            decider = make(vt)
            for t, shape in events:
                vt.ms = t
                admitted += decider(shape)()
        note = ""
        if name == peer_throttled.TITLE:
            _throttled_expired(admin, vt.ms // 1000)
        if name == peer_pyrate.TITLE:
            _pyrate_leak(admin, vt.ms)
        keys, size = measure(admin)
        if name == "quota":
            n, history = measure(admin, "*:h")
            if n:
                note = f"of which {history:,} B: its 31-day daily usage history (the ':h' hash)"
        if name in ("limits (fixed window)", "limits (sliding window counter)"):
            note = "its windows run on the server's clock: the compressed hour refused after 10"
        if "sliding window counter" in name:
            keys, size = 2 * keys, 2 * size
            note += "; x2: a real hour also holds the previous windows"
        out.append(Usage(name, keys, size, admitted, note))
    admin.flushall()
    return table(out), out


class _FakeTime:
    def __init__(self, vt: VirtualTime) -> None:
        self.time = vt.seconds


def table(rows: list[Usage]) -> str:
    ref = rows[0].bytes if rows and rows[0].name == "quota" else None
    lines = [
        "| library | keys | bytes per account | vs quota | admitted of 600 | note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ratio = f"{r.bytes / ref:.1f}x" if ref else "-"
        lines.append(f"| {r.name} | {r.keys} | {r.bytes:,} | {ratio} | {r.admitted} | {r.note} |")
    return "\n".join(lines)


def main() -> None:
    from .server import redis_server

    with redis_server() as port:
        text, _ = run(port)
    print(text)


if __name__ == "__main__":
    main()
