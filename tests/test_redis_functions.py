"""The acquire as a Redis function (FCALL of the library), and the script where there is none.

A decision without a request id is an FCALL of the engine's function library; everything else,
and every acquire where the server has no functions or the user may not call or load them, is
the script (EVALSHA). Here, on real servers: a server whose FCALL or FUNCTION is renamed away
(what Redis 6 answers: unknown command) decides exactly as the memory engine does, asked once
per client; FUNCTION FLUSH mid-run, on one server, asyncio and every Cluster node, reloads the
library and loses nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from conftest import FakeClock, storage_url
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import redis_cluster, redis_server, server_pid
from test_redis_differential import ALGORITHMS, CATALOG, play, step

import quota
from quota.backends.memory import MemoryBackend
from quota.backends.redis import RedisBackend
from quota.backends.redis.codec import LIBRARY

_prefixes = itertools.count()


@pytest.fixture(scope="module", params=["FCALL", "FUNCTION"])
def lacking(request: pytest.FixtureRequest) -> Iterator[tuple[str, redis.Redis]]:
    """A server on which ``FCALL`` (Redis 6 has none) or ``FUNCTION`` (no loading) is
    renamed away: the command, and a client of the server."""
    with redis_server("--rename-command", request.param, "") as port:
        client = redis.Redis(port=port, decode_responses=True)
        yield request.param, client
        client.close()


class Counting(RedisBackend):
    """A RedisBackend that counts the commands it sends, by name."""

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self.sent: dict[str, int] = {}

    def execute(self, command: Any) -> Any:
        self.sent[command[0]] = self.sent.get(command[0], 0) + 1
        return super().execute(command)


def library_loaded(client: redis.Redis) -> bool:
    return bool(client.execute_command("FUNCTION", "LIST", "LIBRARYNAME", LIBRARY.name))


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(step, min_size=1, max_size=40))
def test_without_functions_the_script_decides_alike(
    lacking: tuple[str, redis.Redis], steps: list[tuple[Any, ...]]
) -> None:
    _, client = lacking
    backend = Counting(client, prefix=f"nf{next(_prefixes)}")
    memory = MemoryBackend()
    results = {}
    for name, engine in (("memory", memory), ("redis", backend)):
        clock = FakeClock()
        results[name] = play(quota.Limiter(CATALOG, engine, clock=clock), clock, steps)
    assert results["redis"] == results["memory"]
    stored, reference = backend.dump(ALGORITHMS), memory.dump()
    assert {k: stored[k] for k in reference} == reference
    assert backend.sent.get("FCALL", 0) <= 1  # asked once, then remembered
    assert backend.functions.usable is not True


def test_a_server_without_functions_is_asked_once(lacking: tuple[str, redis.Redis]) -> None:
    renamed, client = lacking
    backend = Counting(client, prefix=f"nf{next(_prefixes)}")
    lim = quota.Limiter("zylo", backend, clock=FakeClock())
    who = quota.Principal(account="acct_nf", plan="basic", key="sk-nf")
    for _ in range(5):
        assert lim.acquire(who, {"requests": 1, "tokens": 100}).allowed
    assert backend.functions.usable is False
    assert backend.sent.get("FCALL") == 1
    assert backend.sent.get("FUNCTION", 0) == (1 if renamed == "FUNCTION" else 0)
    assert backend.sent["EVALSHA"] == 5
    assert {s.name: s.remaining for s in lim.peek(who)}["rpm"] == 10 - 5


def test_function_flush_mid_run_reloads_the_library(redis_port: int, clock: FakeClock) -> None:
    client = redis.Redis(port=redis_port, decode_responses=True)
    backend = Counting(client, prefix=f"ff{next(_prefixes)}")
    lim = quota.Limiter("zylo", backend, clock=clock)
    who = quota.Principal(account="acct_ff", plan="basic", key="sk-ff")
    for i in range(6):
        if i % 2 == 0:
            client.function_flush()
            assert not library_loaded(client)
        assert lim.acquire(who, {"requests": 1, "tokens": 100}).allowed
        assert library_loaded(client)
    assert backend.sent == {"FCALL": 6 + 3, "FUNCTION": 3}  # each flush: one failed FCALL, a load
    assert backend.functions.usable is True
    assert {s.name: s.remaining for s in lim.peek(who)}["rpm"] == 10 - 6


def test_function_flush_mid_run_reloads_for_asyncio(redis_port: int) -> None:
    client = redis.Redis(port=redis_port, decode_responses=True)
    url = f"redis://127.0.0.1:{redis_port}/0?prefix=ffa{next(_prefixes)}"
    who = quota.Principal(account="acct_ffa", plan="basic", key="sk-ffa")

    async def run() -> list[bool]:
        clock = FakeClock()
        async with quota.AsyncLimiter("zylo", url, clock=clock) as lim:
            out = []
            for _ in range(3):  # one at a time: lone calls, the FCALL path
                client.function_flush()
                out.append((await lim.acquire(who, {"requests": 1, "tokens": 100})).allowed)
                out.append(library_loaded(client))
            client.function_flush()  # concurrent calls: one "batch" script call
            decisions = await asyncio.gather(
                *(lim.acquire(who, {"requests": 1, "tokens": 100}) for _ in range(4))
            )
            out += [d.allowed for d in decisions]
            left = {s.name: s.remaining for s in await lim.peek(who)}
            out.append(left["rpm"] == 10 - 7)
            return out

    assert all(asyncio.run(run()))


def test_function_flush_on_every_cluster_node(
    request: pytest.FixtureRequest, redis_cluster_ports: list[int], clock: FakeClock
) -> None:
    """Accounts spread over the three masters; every node's functions flushed mid-run: the
    first FCALL that misses loads the library on every primary."""
    url = storage_url(request, "cluster")
    nodes = [redis.Redis(port=port, decode_responses=True) for port in redis_cluster_ports]
    accounts = [quota.Principal(account=f"acct_fc{i}", plan="basic", key="k") for i in range(9)]
    with quota.Limiter("zylo", url, clock=clock) as lim:
        for _ in range(3):
            for node in nodes:
                node.function_flush()
            for p in accounts:
                assert lim.acquire(p, {"requests": 1, "tokens": 100}).allowed
            assert all(library_loaded(node) for node in nodes if node.info()["role"] == "master")
            clock.advance(1)
        assert lim.backend.functions.usable is True  # type: ignore[attr-defined]
        assert {s.name: s.remaining for s in lim.peek(accounts[4])}["rpm"] == 10 - 3

    async def lone_calls() -> list[bool]:  # asyncio: each call alone in its turn, an FCALL
        async with quota.AsyncLimiter("zylo", url, clock=clock) as alim:
            for node in nodes:
                node.function_flush()
            out = [(await alim.acquire(p, {"requests": 1})).allowed for p in accounts]
            left = {s.name: s.remaining for s in await alim.peek(accounts[4])}
            return [*out, left["rpm"] == 10 - 4, alim.backend.functions.usable is True]

    assert all(asyncio.run(lone_calls()))
    assert all(library_loaded(node) for node in nodes if node.info()["role"] == "master")


def test_a_node_that_lost_the_library_reloads_while_another_primary_is_down(
    clock: FakeClock,
) -> None:
    """A Cluster of its own: one primary killed, another's functions flushed. The FUNCTION
    LOAD that answers the missing library goes to each primary in turn and skips the dead
    one, so the account on the flushed node is decided by the store, not the failure policy."""
    with redis_cluster() as ports:
        nodes = {p: redis.Redis(port=p, decode_responses=True) for p in ports}
        url = f"redis+cluster://127.0.0.1:{ports[0]}?socket_timeout=1&socket_connect_timeout=1"
        who = quota.Principal(account="acct_down", plan="basic", key="k")
        with quota.Limiter("zylo", url, clock=clock, on_error="deny") as lim:
            assert lim.acquire(who, {"requests": 1}).source == "engine"  # the library loads
            slot = lim.planner.account_slot(who.account)
            home = int(nodes[ports[0]].execute_command("CLUSTER", "KEYSLOT", f"{{{slot}}}"))
            owner = next(p for p in ports if _serves(nodes[p], home))
            victim = next(p for p in ports if p != owner)
            nodes[owner].function_flush()
            os.kill(server_pid(victim), signal.SIGKILL)
            decision = lim.acquire(who, {"requests": 1})
            assert (decision.allowed, decision.source) == (True, "engine")
            assert library_loaded(nodes[owner])
        for p, node in nodes.items():
            if p != victim:
                node.close()


def _serves(node: redis.Redis, slot: int) -> bool:
    """Whether ``node`` is the primary serving hash slot ``slot``."""
    me = node.execute_command("CLUSTER", "MYID")
    for start, end, primary, *_ in node.execute_command("CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return bool(primary[2] == me)
    return False
