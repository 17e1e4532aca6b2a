"""Real faults under load: a real redis-server is killed, frozen (SIGSTOP), filled to its
``maxmemory``, stripped of its scripts and restarted on the same port while threads (sync) or
tasks (asyncio) keep deciding.

Checked: the application sees no exception; every decision follows the configured policy
(``rpm`` allow, ``tpm`` local, ``credits`` deny: each request kind has one expected source);
every call returns within the timeout budget plus a margin; service comes back within a second
of the server (measured from the restart to the first decision the store made). Waiting here is
for servers and threads; the limiter's clock is a FakeClock that never moves.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from conftest import FakeClock
from servers import RedisProcess

import quota

TIMEOUT = 0.1  # the budget under test (seconds)
#: Generous: a 2-core machine shared with other work (a CI run saw 0.51 s while the test's own
#: thread filled the server's memory). Still below the 1 s socket timeouts a limiter without
#: the budget would wait for, so the bound shows the budget at work.
MARGIN = 0.7
#: The budget of tests that check no decision fails over, not the time it takes: no call of a
#: loaded 2-core machine lasts this long, so none can fall back for being slow.
PATIENT = 5.0
RECOVERY = 1.0  # service returns within a second of the server

LIMITS: list[dict[str, Any]] = [
    {"name": "rpm", "meter": "requests", "rate": "100000000/minute"},
    {"name": "tpm", "meter": "tokens", "rate": "1000000000/minute", "on_error": "local"},
    {"name": "credits", "meter": "credits", "algorithm": "balance", "grant": 10**12},
]
CATALOG = quota.Catalog.load({"plans": {"p": {"limits": LIMITS}}})
#: Request kinds: cost, and who answers it while the store fails.
KINDS: list[tuple[dict[str, int], str]] = [
    ({"requests": 1}, "allow"),
    ({"requests": 1, "tokens": 10}, "local"),
    ({"requests": 1, "credits": 1}, "deny"),
]


@dataclass(frozen=True)
class Rec:
    done: float  # time.monotonic() when the call returned
    kind: int
    source: str
    allowed: bool
    status: int
    seconds: float


class Load:
    """Callers deciding in a loop until stopped: threads on a Limiter, or asyncio tasks (in a
    thread of their own) on an AsyncLimiter."""

    def __init__(self, url: str, flavour: str, callers: int = 4, timeout: float = TIMEOUT) -> None:
        self.url, self.flavour, self.callers, self.timeout = url, flavour, callers, timeout
        self.records: list[Rec] = []
        self.errors: list[BaseException] = []
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.stats: dict[str, int] = {}

    def _note(self, i: int, start: float, d: quota.Decision) -> None:
        end = time.monotonic()
        self.records.append(Rec(end, i % 3, d.source, d.allowed, d.status, end - start))

    def _sync_caller(self, lim: quota.Limiter, n: int) -> None:
        who = quota.Principal(account=f"s{n}", plan="p")
        i = n
        while not self.stopping.is_set():
            start = time.monotonic()
            try:
                self._note(i, start, lim.acquire(who, KINDS[i % 3][0]))
            except BaseException as exc:  # the application must see none
                self.errors.append(exc)
                return
            i += 1

    async def _async_caller(self, lim: quota.AsyncLimiter, n: int) -> None:
        who = quota.Principal(account=f"a{n}", plan="p")
        i = n
        while not self.stopping.is_set():
            start = time.monotonic()
            try:
                self._note(i, start, await lim.acquire(who, KINDS[i % 3][0]))
            except BaseException as exc:
                self.errors.append(exc)
                return
            i += 1
            await asyncio.sleep(0)

    async def _async_main(self) -> None:
        async with quota.AsyncLimiter(
            CATALOG, self.url, clock=FakeClock(), timeout=self.timeout
        ) as lim:
            await asyncio.gather(*(self._async_caller(lim, n) for n in range(self.callers * 4)))
            assert lim.guard is not None
            self.stats = lim.guard.stats.as_dict()

    def __enter__(self) -> Load:
        if self.flavour == "sync":
            self.lim = quota.Limiter(CATALOG, self.url, clock=FakeClock(), timeout=self.timeout)
            self.threads = [
                threading.Thread(target=self._sync_caller, args=(self.lim, n))
                for n in range(self.callers)
            ]
        else:
            self.threads = [threading.Thread(target=asyncio.run, args=(self._async_main(),))]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=30)
        if self.flavour == "sync":
            assert self.lim.guard is not None
            self.stats = self.lim.guard.stats.as_dict()
            self.lim.close()

    # -- what the test waits for and checks -----------------------------------------------

    def count(self, pred: Callable[[Rec], bool]) -> int:
        return sum(1 for r in list(self.records) if pred(r))

    def wait(self, pred: Callable[[Rec], bool], n: int = 1, within: float = 10.0) -> float:
        """Wait until ``n`` decisions satisfy ``pred``; the monotonic time of the n-th."""
        deadline = time.monotonic() + within
        while True:
            hits = sorted(r.done for r in list(self.records) if pred(r))
            if len(hits) >= n:
                return hits[n - 1]
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, f"waited {within} s for {n} decisions"
            time.sleep(0.005)  # waiting for other threads, not moving any clock

    def check(self) -> float:
        """Every decision followed the policy; the slowest call (seconds)."""
        assert not self.errors, self.errors
        assert self.records
        for r in self.records:
            expected = KINDS[r.kind][1]
            if r.source == "engine":
                assert r.allowed and r.status == 200
            else:
                assert r.source == expected, r
                assert r.allowed is (expected != "deny")
                assert r.status == (503 if expected == "deny" else 200)
        slowest = max(r.seconds for r in self.records)
        assert slowest <= self.timeout + MARGIN, slowest
        return slowest


FLAVOURS = ["sync", "async"]
MEASURED: dict[str, float] = {}


def _url(server: RedisProcess, prefix: str) -> str:
    return f"redis://127.0.0.1:{server.port}/0?prefix={prefix}"


def _outage(load: Load, server: RedisProcess, since: float, start: Callable[[], Any]) -> float:
    """Let the outage last until every kind got its fallback answer, bring the store back with
    ``start``, and return the seconds from then to the first decision the store made."""
    for kind in range(3):
        load.wait(lambda r, k=kind: r.done > since and r.kind == k and r.source != "engine")
    start()
    back = time.monotonic()
    first = load.wait(lambda r: r.done > back and r.source == "engine")
    return first - back


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_kill_and_restart_on_the_same_port(flavour: str) -> None:
    with RedisProcess() as server, Load(_url(server, "kill"), flavour) as load:
        load.wait(lambda r: r.source == "engine", n=50)
        killed = time.monotonic()
        server.kill()
        recovery = _outage(load, server, killed, server.start)
    slowest = load.check()
    MEASURED[f"kill/{flavour}"] = recovery
    assert recovery < RECOVERY, recovery
    assert load.stats["failures"] >= 1 and load.stats["decisions_deny"] >= 1
    print(f"kill {flavour}: recovery {recovery:.3f} s, slowest call {slowest:.3f} s, {load.stats}")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_frozen_server_past_the_timeout(flavour: str) -> None:
    with RedisProcess() as server, Load(_url(server, "stop"), flavour) as load:
        load.wait(lambda r: r.source == "engine", n=50)
        frozen = time.monotonic()
        server.freeze()
        load.wait(lambda r: r.done > frozen + 3 * TIMEOUT and r.source != "engine")
        recovery = _outage(load, server, frozen, server.thaw)
    slowest = load.check()
    assert recovery < RECOVERY, recovery
    assert load.stats["timeouts"] >= 1
    print(f"SIGSTOP {flavour}: recovery {recovery:.3f} s, slowest {slowest:.3f} s, {load.stats}")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_memory_full_then_freed(flavour: str) -> None:
    args = ("--maxmemory", "4mb", "--maxmemory-policy", "noeviction")
    with RedisProcess(*args) as server, Load(_url(server, "oom"), flavour) as load:
        load.wait(lambda r: r.source == "engine", n=50)
        junk = redis.Redis(port=server.port)
        filled = time.monotonic()
        with pytest.raises(redis.exceptions.ResponseError, match="maxmemory"):
            for i in range(10_000):
                junk.set(f"junk:{i}", b"x" * 65536)
        # Filled to the brim, the server still takes writes that fit; hold it over the line.
        used = int(junk.info("memory")["used_memory"])
        junk.config_set("maxmemory", used - 512 * 1024)
        recovery = _outage(load, server, filled, lambda: junk.delete(*junk.keys("junk:*")))
        junk.close()
    slowest = load.check()
    assert recovery < RECOVERY, recovery
    print(f"OOM {flavour}: recovery {recovery:.3f} s, slowest {slowest:.3f} s, {load.stats}")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_script_flush_costs_no_decision(flavour: str) -> None:
    """Counts, not durations: with the 0.1 s budget a call slowed by a loaded machine (the
    reload, the GIL shared with the waiting test) fell back once and failed the test, so the
    budget here is PATIENT; what is checked is that every decision came from the store and that
    each flush was answered by a reload (EVAL of the script, FUNCTION LOAD of the library that
    the acquires without a request id call), never by a fallback."""
    with (
        RedisProcess() as server,
        Load(_url(server, "flush"), flavour, timeout=PATIENT) as load,
    ):
        admin = redis.Redis(port=server.port)
        for _ in range(5):
            n = load.count(lambda r: True)
            load.wait(lambda r: r.source == "engine", n=n + 20, within=60.0)
            admin.script_flush()
            admin.function_flush()
        stats = admin.info("commandstats")
        evals = sum(
            int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("eval", "function|load")
        )
        admin.close()
    load.check()
    assert {r.source for r in load.records} == {"engine"}  # NOSCRIPT is answered by EVAL
    assert load.stats["failures"] == 0
    assert evals >= 4, evals  # each flush but the last is followed by 20 decisions at least


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_appendonly_counters_survive_a_restart(flavour: str) -> None:
    small = quota.Catalog.load(
        {"plans": {"p": {"limits": [{"name": "rpm", "meter": "requests", "rate": "5/minute"}]}}}
    )
    who = quota.Principal(account="durable", plan="p")
    clock = FakeClock()
    args = ("--appendonly", "yes", "--appendfsync", "always")
    with RedisProcess(*args) as server:
        url = _url(server, "aof")

        def run_sync() -> list[quota.Decision]:
            with quota.Limiter(small, url, clock=clock) as lim:
                out = [lim.acquire(who, {"requests": 1}) for _ in range(5)]
                server.kill()  # SIGKILL: only what was fsynced survives
                server.start()
                out.append(lim.acquire(who, {"requests": 1}))
                return out

        async def run_async() -> list[quota.Decision]:
            async with quota.AsyncLimiter(small, url, clock=clock) as lim:
                out = [await lim.acquire(who, {"requests": 1}) for _ in range(5)]
                await asyncio.to_thread(server.kill)
                await asyncio.to_thread(server.start)
                out.append(await lim.acquire(who, {"requests": 1}))
                return out

        decisions = run_sync() if flavour == "sync" else asyncio.run(run_async())
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    last = decisions[-1]
    assert last.source == "engine" and last.denied_by == "rpm" and last.status == 429
