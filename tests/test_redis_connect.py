"""The Redis engine's flavours and URLs on real servers: sync and async, single server and
Cluster, all agree with the memory engine call for call; Unix sockets, the ``valkey``
spellings and Sentinel connect; the server's clock is the default clock; bad URLs are
ConfigErrors.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from conftest import FakeClock, storage_url
from servers import free_port, redis_sentinel, redis_server

import quota

ZYLO = quota.Catalog.load("zylo")
COST = {"requests": 1, "tokens": 1500, "credits": ZYLO.price("gpt-5.5", 500, 1000)}
ACTUAL = {"tokens": 1210, "credits": ZYLO.price("gpt-5.5", 500, 710)}
P = quota.Principal(account="acct_flavours", plan="go", key="sk-flavours")


class Synced:
    """A sync limiter behind the async limiter's interface, so one scenario drives both."""

    def __init__(self, limiter: quota.Limiter) -> None:
        self.limiter = limiter

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.limiter, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call


async def scenario(lim: Any, clock: FakeClock) -> list[Any]:
    """Every operation of the plain API; what each returned."""
    seen: list[Any] = []
    d1 = await lim.acquire(P, COST, request_id="r1", model="gpt-5.5", features={"tools"})
    seen += [d1, await lim.acquire(P, COST, request_id="r1", model="gpt-5.5")]  # replayed
    seen += [await lim.settle(d1, ACTUAL), await lim.settle(d1, ACTUAL)]  # True, then False
    d2 = await lim.acquire(P, COST)  # recordless
    seen += [d2, await lim.settle(d2, ACTUAL), await lim.release(d2)]
    seen += [await lim.acquire(P, COST, request_id="r3"), await lim.release("r3", who=P)]
    for _ in range(11):  # search: 10/minute per key, the 11th is denied
        clock.advance(1)
        seen.append(await lim.acquire(P, {"google_search": 1}))
    seen += [await lim.peek(P), await lim.top_up(P, "credits", 5_000_000)]
    clock.advance(61)
    seen.append(await lim.acquire(P, {"url_context": 1}))
    seen.append(await lim.acquire(P, {"tokens": 600_000}))  # over the daily cap: 429
    seen.append(await lim.acquire(P, {"credits": 10**9}))  # over the balance: 402
    await lim.reset(P)
    seen.append(await lim.peek(P))
    await lim.reset(P, include_balance=True)
    seen.append(await lim.peek(P))
    return seen


async def run_async(url: str, clock: FakeClock) -> list[Any]:
    async with quota.AsyncLimiter(ZYLO, url, clock=clock) as lim:
        return await scenario(lim, clock)


def run(url: str, flavour: str) -> list[Any]:
    """The scenario through one flavour, from a fresh clock."""
    clock = FakeClock()
    if flavour == "async":
        return asyncio.run(run_async(url, clock))
    with quota.Limiter(ZYLO, url, clock=clock) as lim:
        return asyncio.run(scenario(Synced(lim), clock))


#: (engine, flavour) pairs.
FLAVOURS = [("redis", "sync"), ("redis", "async"), ("cluster", "sync"), ("cluster", "async")]


@pytest.fixture(scope="module")
def expected() -> list[Any]:
    """The scenario on the memory engine: what every Redis flavour must answer."""
    seen = run("memory://", "sync")
    assert seen[1].replayed and seen[2:4] == [True, False]
    assert [d.allowed for d in seen[18:20]] == [True, False]  # the search budget bites
    assert [d.status for d in seen[-4:-2]] == [429, 402]
    return seen


@pytest.mark.parametrize(("engine", "flavour"), FLAVOURS)
def test_every_flavour_agrees_with_memory(
    request: pytest.FixtureRequest, expected: list[Any], engine: str, flavour: str
) -> None:
    """Decisions (states, retry-after, headers' inputs), peeks, settle/release results and
    top-ups are equal, field for field, to the memory engine's."""
    assert run(storage_url(request, engine), flavour) == expected


# -- URLs -----------------------------------------------------------------------------------


def works(url: str, flavour: str) -> int:
    """One decision through ``flavour``; the requests left (rpd) after it."""
    clock = FakeClock()
    if flavour == "sync":
        with quota.Limiter(ZYLO, url, clock=clock) as lim:
            assert lim.acquire(P, COST).allowed
            return {s.name: s.remaining for s in lim.peek(P)}["rpd"]

    async def go() -> int:
        async with quota.AsyncLimiter(ZYLO, url, clock=clock) as alim:
            assert (await alim.acquire(P, COST)).allowed
            return {s.name: s.remaining for s in await alim.peek(P)}["rpd"]

    return asyncio.run(go())


def test_unix_socket() -> None:
    with tempfile.TemporaryDirectory(prefix="q") as tmp:  # short: a socket path is < 108 bytes
        sock = f"{tmp}/redis.sock"
        with redis_server("--unixsocket", sock, "--unixsocketperm", "700"):
            assert works(f"redis+unix://{sock}?prefix=unix", "sync") == 28_800 - 1
            assert works(f"redis+unix://{sock}?prefix=unix", "async") == 28_800 - 2
            assert works(f"valkey+unix://{sock}?prefix=unix", "sync") == 28_800 - 3
            assert works(f"valkey+unix://{sock}?prefix=unix", "async") == 28_800 - 4


@pytest.mark.parametrize(("engine", "flavour"), FLAVOURS)
def test_valkey_spellings_reach_the_same_state(
    request: pytest.FixtureRequest, engine: str, flavour: str
) -> None:
    url = storage_url(request, engine)
    assert works(url.replace("redis", "valkey", 1), flavour) == 28_800 - 1
    assert works(url, flavour) == 28_800 - 2


def test_sentinel() -> None:
    with redis_server() as master, redis_sentinel(master) as sentinel:
        url = f"redis+sentinel://127.0.0.1:{sentinel}/mymaster?prefix=sentinel"
        assert works(url, "sync") == 28_800 - 1
        assert works(url, "async") == 28_800 - 2
        assert works(url.replace("redis", "valkey", 1), "async") == 28_800 - 3
        stored = redis.Redis(port=master).scan_iter(match="sentinel:{*")
        assert next(stored, None) is not None  # the state lives on the master


@pytest.mark.parametrize(("engine", "flavour"), FLAVOURS)
def test_default_clock_is_the_servers(
    request: pytest.FixtureRequest, engine: str, flavour: str
) -> None:
    """No clock given: the limiter's clock is the engine's (local time corrected by the
    server's TIME), measured by the first operation (or on entering, for AsyncLimiter)."""
    url = storage_url(request, engine)
    if flavour == "sync":
        with quota.Limiter(ZYLO, url) as lim:
            assert lim.clock == lim.backend.clock
            d = lim.acquire(P, COST)
            assert lim.backend.server_clock.measured
            assert abs(lim.clock() - time.time()) < 1 and abs(d.now - time.time()) < 1
        return

    async def check() -> None:
        async with quota.AsyncLimiter(ZYLO, url) as alim:
            assert alim.clock == alim.backend.clock
            assert alim.backend.server_clock.measured
            d = await alim.acquire(P, COST)
            assert abs(alim.clock() - time.time()) < 1 and abs(d.now - time.time()) < 1

    asyncio.run(check())


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://h:1", r"sentinel URL 'redis\+sentinel://h:1' needs a service name"),
        ("redis+sentinel://h:1/svc/x", "bad database number"),
        ("redis+cluster://h:x", "bad host:port 'h:x'"),
        ("redis://h:1?socket_timeout=soon", r"bad value .soon. for socket_timeout"),
        ("redis://h:1?prefix=a{b", "bad key prefix 'a{b'"),
        ("rediss+sentinel://h:1/s", "unknown storage URL"),
    ],
)
@pytest.mark.parametrize("flavour", [quota.Limiter, quota.AsyncLimiter])
def test_bad_urls_are_config_errors(flavour: type[Any], url: str, message: str) -> None:
    with pytest.raises(quota.ConfigError, match=message):
        flavour(ZYLO, url)


@pytest.mark.parametrize("flavour", [quota.Limiter, quota.AsyncLimiter])
def test_a_bad_port_is_a_config_error(flavour: type[Any]) -> None:
    with pytest.raises(quota.ConfigError, match="notaport"):
        flavour(ZYLO, "redis://h:notaport")


@pytest.mark.parametrize("flavour", [quota.Limiter, quota.AsyncLimiter])
@pytest.mark.parametrize("engine", ["redis", "cluster"])
def test_an_unknown_option_is_a_config_error(
    request: pytest.FixtureRequest, engine: str, flavour: type[Any]
) -> None:
    url = storage_url(request, engine) + "&colour=blue"
    with pytest.raises(quota.ConfigError, match="colour"):
        lim = flavour(ZYLO, url, clock=FakeClock())
        result = lim.acquire(P, COST)
        if asyncio.iscoroutine(result):
            asyncio.run(result)


def test_an_unreachable_cluster_is_a_backend_error() -> None:
    with pytest.raises(quota.BackendError):
        url = f"redis+cluster://127.0.0.1:{free_port()}"
        lim = quota.Limiter(ZYLO, url, clock=FakeClock(), on_error="raise")
        lim.acquire(P, COST)


def test_asyncio_connections_pack_with_hiredis_exactly_as_redis_py_does() -> None:
    """The asyncio pool's connections pack commands in C (redis-py packs them in Python, one
    argument at a time): same bytes, multi-word commands split the same way."""
    import redis.asyncio as aredis

    from quota.backends.redis.connect import hiredis_packing

    fast = hiredis_packing(aredis.Connection)(host="127.0.0.1", port=1)
    slow = aredis.Connection(host="127.0.0.1", port=1)
    for command in (
        ("EVALSHA", "abc", 2, "k{1}", "k{1}:p", "acquire", 1795305600000, -1, "é"),
        ("SCRIPT LOAD", "return 1"),
        (b"CLIENT SETNAME", "quota"),
    ):
        assert b"".join(fast.pack_command(*command)) == b"".join(slow.pack_command(*command))
    client = quota.AsyncLimiter("zylo", "redis://127.0.0.1:1/0", on_error="raise")
    pool = client.backend.client.connection_pool
    assert pool.connection_class.__name__.startswith("Hiredis")


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_dead_sentinel_gives_up_at_once(flavour: str) -> None:
    """No Sentinel listens: redis-py's default retry with backoff took 7-15 s per call; the
    Sentinels are asked without it, so the failure policy answers within the timeouts (3 s is
    a bound for a loaded machine: a refused connection fails at once)."""
    url = (
        f"redis+sentinel://127.0.0.1:{free_port()}/mymaster"
        "?socket_connect_timeout=0.2&socket_timeout=0.2"
    )
    who = quota.Principal(account="a", plan="basic", key="k")
    start = time.monotonic()
    if flavour == "sync":
        decision = quota.Limiter("zylo", url, on_error="deny").acquire(who, {"requests": 1})
    else:

        async def run() -> quota.Decision:
            async with quota.AsyncLimiter("zylo", url, on_error="deny") as lim:
                return await lim.acquire(who, {"requests": 1})

        decision = asyncio.run(run())
    assert decision.source == "deny"
    assert time.monotonic() - start < 3.0
