"""Operating the Redis engine on real servers: scripts flushed and servers restarted in the
middle of a run, the memory one account costs, and one round trip per decision.

Time is a FakeClock moved by hand; nothing here sleeps to move the limiter's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

import pytest
import redis
from conftest import START, FakeClock, storage_url
from servers import free_port, redis_server

import quota
from quota.backends.redis.codec import LIBRARY, script_sha
from quota.keys import DEFAULT_SECRET, account_slot

ZYLO = quota.Catalog.load("zylo")
PLANS = ["basic", "go", "pro", "mega", "enterprise"]

#: A plan whose decisions span the account's slot and the global slot.
SHARED = quota.Catalog.load(
    {
        "name": "shared",
        "meters": {"names": ["requests"]},
        "plans": {
            "shared": {
                "limits": [
                    {"name": "mine", "meter": "requests", "rate": "50/minute"},
                    {"name": "ours", "meter": "requests", "rate": "1000/minute", "scope": "global"},
                ]
            }
        },
    }
)


def who(plan: str, account: str = "acct_ops") -> quota.Principal:
    return quota.Principal(account=account, plan=plan, key=f"sk-{account}")


def cost(plan: str, search: bool = False) -> dict[str, int]:
    """A realistic chat completion: 500 prompt tokens + max_tokens 1000, priced on gpt-5.5."""
    out = {"requests": 1, "tokens": 1500}
    if plan != "basic":
        out["credits"] = ZYLO.price("gpt-5.5", 500, 1000)
        if search:
            out["google_search"] = 1
    return out


def actual(plan: str) -> dict[str, int]:
    """What the call really used: 710 completion tokens instead of 1000."""
    out = {"tokens": 1210}
    if plan != "basic":
        out["credits"] = ZYLO.price("gpt-5.5", 500, 710)
    return out


def model(plan: str) -> str:
    return "gpt-4o-mini" if plan == "basic" else "gpt-5.5"


def remaining(limiter: quota.Limiter, p: quota.Principal) -> dict[str, int]:
    return {s.name: s.remaining for s in limiter.peek(p)}


def admin(port: int) -> redis.Redis:
    return redis.Redis(port=port, decode_responses=True)


def library_loaded(server: redis.Redis) -> bool:
    """Whether ``server`` holds the engine's function library."""
    return bool(server.execute_command("FUNCTION", "LIST", "LIBRARYNAME", LIBRARY.name))


@pytest.fixture
def url(request: pytest.FixtureRequest) -> str:
    return storage_url(request, "redis")


# -- SCRIPT FLUSH and restarts --------------------------------------------------------------


def test_script_flush_mid_run_reloads_for_every_operation(
    url: str, redis_port: int, clock: FakeClock
) -> None:
    server = admin(redis_port)
    p = who("go")
    with quota.Limiter(ZYLO, url, clock=clock) as lim:
        first = lim.acquire(p, cost("go"), request_id="r0", model="gpt-5.5")
        assert first.allowed
        steps: list[tuple[str, Any]] = [
            ("acquire by id", lambda: lim.acquire(p, cost("go"), request_id="r1").allowed),
            ("replay", lambda: lim.acquire(p, cost("go"), request_id="r1").replayed),
            ("settle by id", lambda: lim.settle("r1", actual("go"), who=p)),
            ("settle a decision", lambda: lim.settle(first, actual("go"))),
            ("recordless", lambda: lim.settle(lim.acquire(p, cost("go")), actual("go"))),
            ("release by id", lambda: lim.release(lim.acquire(p, cost("go"), request_id="r2"))),
            ("peek", lambda: remaining(lim, p)["rpd"] == 28_800 - 3),
            ("top_up", lambda: lim.top_up(p, "credits", 1_000) > 0),
            ("search", lambda: lim.acquire(p, {"google_search": 1}).allowed),
            ("reset", lambda: lim.reset(p) is None and remaining(lim, p)["rpd"] == 28_800),
        ]
        # Acquires without a request id are FCALLs of the function library; the rest are
        # script calls. Both are flushed before every step; what the step calls comes back.
        uses = {"recordless": {"script", "library"}, "search": {"library"}}
        for name, step in steps:
            server.script_flush()
            server.function_flush()
            assert server.script_exists(script_sha()) == [False] and not library_loaded(server)
            assert step(), name
            loaded = {"script"} if server.script_exists(script_sha()) == [True] else set()
            loaded |= {"library"} if library_loaded(server) else set()
            assert loaded == uses.get(name, {"script"}), name
            clock.advance(1)

    async def flushed_async() -> None:
        async with quota.AsyncLimiter(ZYLO, url, clock=clock) as alim:
            settled = []
            for _ in range(2):  # the second acquire is a replay, its settle a no-op
                server.script_flush()
                assert (await alim.acquire(p, cost("go"), request_id="a1")).allowed
                settled.append(await alim.settle("a1", actual("go"), who=p))
            assert settled == [True, False]
            assert {s.name: s.remaining for s in await alim.peek(p)}["rpd"] == 28_800 - 1

    asyncio.run(flushed_async())


def test_script_flush_on_every_cluster_node(
    request: pytest.FixtureRequest, redis_cluster_ports: list[int], clock: FakeClock
) -> None:
    """Accounts spread over the three masters, decisions joined to the global slot (the
    reserve-then-release protocol), every node's scripts flushed twice mid-run."""
    url = storage_url(request, "cluster")
    nodes = [admin(port) for port in redis_cluster_ports]
    accounts = [quota.Principal(account=f"acct_{i}", plan="shared") for i in range(12)]
    with quota.Limiter(SHARED, url, clock=clock) as lim:
        for round_ in range(3):
            if round_:
                for node in nodes:
                    node.script_flush()
                assert all(node.script_exists(script_sha()) == [False] for node in nodes)
            for p in accounts:
                d = lim.acquire(p, {"requests": 1}, request_id=f"r{round_}")
                assert d.allowed and lim.settle(d, {"requests": 1})
            assert {s.name: s.remaining for s in lim.peek(accounts[0])} == {
                "mine": 50 - round_ - 1,
                "ours": 1000 - 12 * (round_ + 1),
            }
            clock.advance(1)
        prefix = url.rpartition("prefix=")[2]
        # Every master served some of these decisions, so every master reloaded the script.
        for node in nodes:
            assert next(node.scan_iter(match=f"{prefix}:*"), None) is not None
            assert node.script_exists(script_sha()) == [True]

    async def concurrently() -> None:
        """The async flavour sends concurrent calls as pipelines: NOSCRIPT inside them too."""
        async with quota.AsyncLimiter(SHARED, url, clock=clock) as alim:
            for node in nodes:
                node.script_flush()
            tasks = [alim.acquire(p, {"requests": 1}, request_id="a") for p in accounts]
            assert all(d.allowed for d in await asyncio.gather(*tasks))
            assert alim.backend.batcher.pipelines >= 1  # they did go out as pipelines
            left = {s.name: s.remaining for s in await alim.peek(accounts[0])}
            assert left == {"mine": 46, "ours": 1000 - 48}

    asyncio.run(concurrently())


def test_server_restart_mid_run(clock: FakeClock) -> None:
    port = free_port()
    p = who("basic")
    url = f"redis://127.0.0.1:{port}/0?prefix=restart"
    lim = quota.Limiter(ZYLO, url, clock=clock, on_error="raise")  # the engine's own errors
    with redis_server(port=port):
        decisions = [lim.acquire(p, cost("basic"), request_id=f"r{i}") for i in range(3)]
        assert all(d.allowed for d in decisions)
        assert remaining(lim, p)["rpm"] == 7
    # Down: every operation fails as quota.BackendError (the gateway's on_error policy decides).
    calls: list[Any] = [
        lambda: lim.acquire(p, cost("basic")),
        lambda: lim.acquire(p, cost("basic"), request_id="down"),
        lambda: lim.settle(decisions[0], actual("basic")),
        lambda: lim.peek(p),
        lambda: lim.top_up(who("go"), "credits", 5),
        lambda: lim.reset(p),
    ]
    for call in calls:
        with pytest.raises(quota.BackendError, match="redis: ConnectionError") as caught:
            call()
        assert type(caught.value) is quota.BackendError
    with redis_server(port=port):  # back, empty (no persistence): the script is reloaded
        d = lim.acquire(p, cost("basic"), request_id="after")
        assert d.allowed and d.states[0].remaining == 9
        assert lim.settle(d, actual("basic"))
        assert not lim.settle(decisions[1], actual("basic"))  # its record died with the server
        left = {"rpm": 9, "rpd": 7199, "tpd": 200_000 - 1210, "web_extract": 10}
        assert remaining(lim, p) == left
    with redis_server(port=port):  # restarted with no call in between: the next call succeeds
        assert lim.acquire(p, cost("basic")).allowed
    lim.close()


async def _restart(stack: contextlib.ExitStack, port: int) -> None:
    """Stop and start the server on ``port`` while the event loop keeps running."""
    await asyncio.to_thread(stack.close)
    await asyncio.to_thread(stack.enter_context, redis_server(port=port))


async def _async_restart_run(clock: FakeClock) -> list[str]:
    """Up, down, up again, then a restart with no call in between: what each later call did."""
    port = free_port()
    p = who("basic")
    seen: list[str] = []
    with contextlib.ExitStack() as stack:
        await asyncio.to_thread(stack.enter_context, redis_server(port=port))
        url = f"redis://127.0.0.1:{port}/0?prefix=arestart"
        async with quota.AsyncLimiter(ZYLO, url, clock=clock, on_error="raise") as lim:
            assert (await lim.acquire(p, cost("basic"))).allowed
            await asyncio.to_thread(stack.close)
            with pytest.raises(quota.BackendError) as caught:
                await lim.acquire(p, cost("basic"))
            assert type(caught.value) is quota.BackendError
            await asyncio.to_thread(stack.enter_context, redis_server(port=port))
            assert (await lim.acquire(p, cost("basic"))).states[0].remaining == 9  # back
            await _restart(stack, port)
            for _ in range(3):
                try:
                    d = await lim.acquire(p, cost("basic"), request_id=f"r{len(seen)}")
                except quota.BackendError as exc:
                    assert type(exc) is quota.BackendError
                    seen.append("BackendError")
                else:
                    seen.append(f"allowed rpm={d.states[0].remaining}")
    return seen


def test_async_server_restart_mid_run(clock: FakeClock) -> None:
    """The async flavour recovers too: at worst the first call after the restart fails (as
    BackendError, charging nothing: the server is empty and the next call sees rpm 9)."""
    seen = asyncio.run(_async_restart_run(clock))
    assert seen in (
        ["allowed rpm=9", "allowed rpm=8", "allowed rpm=7"],
        ["BackendError", "allowed rpm=9", "allowed rpm=8"],
    )


def test_async_first_call_after_restart_succeeds(clock: FakeClock) -> None:
    assert asyncio.run(_async_restart_run(clock))[0] == "allowed rpm=9"


# -- MEMORY USAGE ---------------------------------------------------------------------------

ATTEMPTS = 120  # requests tried in a busy minute, one every 500 ms
GROWTH_TOLERANCE = 64  # bytes; see test_memory_of_one_account_per_zylo_plan


def busy_minute(lim: quota.Limiter, clock: FakeClock, plan: str, p: quota.Principal) -> int:
    """ATTEMPTS chat completions in one minute, each admitted one settled to its real usage;
    one in twelve calls Google Search (10 a minute: the plans' whole search budget)."""
    admitted = 0
    for i in range(ATTEMPTS):
        d = lim.acquire(p, cost(plan, search=i % 12 == 0), model=model(plan))
        if d.allowed:
            admitted += 1
            assert lim.settle(d, actual(plan))
        clock.advance_ms(60_000 // ATTEMPTS)
    return admitted


def account_memory(server: redis.Redis, prefix: str, account: str) -> dict[str, int]:
    """MEMORY USAGE (exact: SAMPLES 0) of every key of one account's slot."""
    slot = account_slot(account, DEFAULT_SECRET)
    keys = sorted(server.scan_iter(match=f"{prefix}:{{{slot}}}*", count=1000))
    # The usage history (``:h``) grows by design for history_days: tests/test_usage_history.py.
    keys = [key for key in keys if not key.endswith(":h")]
    return {key: int(server.memory_usage(key, samples=0) or 0) for key in keys}


def split(usage: dict[str, int]) -> tuple[int, int, int]:
    """Bytes of the state hash, the balances hash (``:p``) and the records (``:r:*``)."""
    records = sum(v for k, v in usage.items() if ":r:" in k)
    balances = sum(v for k, v in usage.items() if k.endswith(":p"))
    return sum(usage.values()) - records - balances, balances, records


def test_memory_of_one_account_per_zylo_plan(url: str, redis_port: int, clock: FakeClock) -> None:
    """One account's whole state after a busy minute, then after ten more busy minutes (on ten
    more days, so each is as busy as the first): no growth. The tolerance (64 bytes) is for
    values a few characters longer on a later day (a log's first entry is an absolute base-36
    time, counters and balances are decimal) and the allocator rounding a listpack up to its
    size class; the state itself is bounded (logs merge beyond ``precision`` entries)."""
    server = admin(redis_port)
    prefix = url.rpartition("prefix=")[2]
    lines = []
    with quota.Limiter(ZYLO, url, clock=clock) as lim:
        for plan in PLANS:
            account = f"acct_mem_{plan}"
            p = who(plan, account)
            # Each plan on days of its own: the global upstream budget of the premium plans'
            # requests is one log for all of them, and a sliding window's time goes forward.
            base = START + dt.timedelta(days=11 * PLANS.index(plan))
            clock.set(base + dt.timedelta(hours=12))
            admitted = busy_minute(lim, clock, plan, p)
            first = account_memory(server, prefix, account)
            more = 0
            for day in range(1, 11):
                clock.set(base + dt.timedelta(days=day, hours=12))
                if plan != "basic":  # buys what a day spends (~120 x 7725 credits)
                    lim.top_up(p, "credits", 1_000_000)
                more += busy_minute(lim, clock, plan, p)
            later = account_memory(server, prefix, account)
            # What one request id adds while its reservation lives (reservation_ttl, 15 min).
            clock.advance(120)
            d = lim.acquire(p, cost(plan), model=model(plan), request_id="req-1")
            assert d.allowed and lim.settle(d, actual(plan))
            record = split(account_memory(server, prefix, account))[2]

            assert not any(":r:" in key for key in first)  # recordless: no key per request
            assert all(server.object("encoding", key) == "listpack" for key in later)
            assert more >= 10 * admitted
            total, total_later = sum(first.values()), sum(later.values())
            assert total_later <= total + GROWTH_TOLERANCE, (plan, first, later)
            state, balances, _ = split(first)
            lines.append(
                f"{plan:<11}{admitted:>9}{state:>7}{balances:>10}{total:>7}"
                f"{more:>11}{total_later:>7}{record:>12}"
            )
            if plan == "basic":
                assert total < 400

    print("\nMEMORY USAGE (bytes) of one account's keys: after a busy minute, after 10 more")
    print(
        f"{'plan':<11}{'admitted':>9}{'state':>7}{'balances':>10}{'total':>7}"
        f"{'+admitted':>11}{'total':>7}{'+1 req id':>12}"
    )
    print("\n".join(lines))


# -- one round trip per decision ------------------------------------------------------------

END = "quota-test-end"


def sent(server: redis.Redis, step: Any) -> tuple[list[str], dict[str, int]]:
    """Run ``step`` under MONITOR: the commands clients sent (not those scripts issued), and
    the INFO commandstats counts (scripts' commands included) since a CONFIG RESETSTAT."""
    marker = admin(server.connection_pool.connection_kwargs["port"])
    marker.ping()  # connected before MONITOR starts: its ECHO is its only command after
    server.config_resetstat()
    with server.monitor() as monitor:
        step()
        marker.echo(END)  # the monitor's output ends here
        names: list[str] = []
        while True:
            entry = monitor.next_command()
            if END in entry["command"]:
                break
            if entry["client_type"] != "lua":
                names.append(entry["command"].split()[0].lower())
    stats = server.info("commandstats")
    counts = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    return names, counts


def test_one_round_trip_per_decision(clock: FakeClock) -> None:
    """A Zylo go decision over four limits (rpd, tpd, credits, search) is one FCALL of the
    function library (one EVALSHA with a request id), and each settle, peek, top_up and reset
    one EVALSHA; nothing else is sent (the clock is injected, so no TIME either)."""
    p = who("go")
    n = 25
    with redis_server() as port:
        server = admin(port)
        lim = quota.Limiter(ZYLO, f"redis://127.0.0.1:{port}/0", clock=clock)
        lim.peek(p)  # connect and load the script
        lim.acquire(p, {"requests": 0})  # and the function library

        def decisions() -> None:
            for _ in range(n):
                # A basic-tier model: premium ones also meet the global "upstream" budget.
                d = lim.acquire(p, cost("go", search=True), model="gpt-4o-mini")
                assert d.allowed
                assert {"rpd", "tpd", "credits", "search"} <= {s.name for s in d.states}
                clock.advance(7)  # search: 10/minute

        names, counts = sent(server, decisions)
        assert names == ["fcall"] * n
        assert counts["fcall"] == n
        observer = {"fcall", "echo", "monitor", "hello", "ping", "config|resetstat"}
        inner = {k: v for k, v in counts.items() if k not in observer and "|" not in k}

        def count(step: Any) -> int:
            names, _ = sent(server, step)
            assert set(names) <= {"evalsha", "fcall"}, names
            return len(names)

        recordless = lim.acquire(p, cost("go"))
        assert count(lambda: lim.settle(recordless, actual("go"))) == 1
        assert count(lambda: lim.settle(recordless, actual("go"))) == 0  # settled: nothing
        assert count(lambda: lim.settle(lim.acquire(p, cost("go"), request_id="r0"), {})) == 2
        assert count(lambda: lim.acquire(p, cost("go"), request_id="r1")) == 1
        assert count(lambda: lim.acquire(p, cost("go"), request_id="r1")) == 1  # a replay
        assert count(lambda: lim.settle("r1", actual("go"), who=p)) == 1
        assert count(lambda: lim.release(lim.acquire(p, cost("go"), request_id="r2"))) == 2
        assert count(lambda: lim.acquire(p, {"tokens": 10**6})) == 1  # a denial
        assert count(lambda: lim.peek(p)) == 1
        assert count(lambda: lim.top_up(p, "credits", 100)) == 1
        assert count(lambda: lim.reset(p)) == 1
        # On one server, a decision joined to the global slot is still one call.
        shared = quota.Limiter(SHARED, f"redis://127.0.0.1:{port}/0", clock=clock)
        q = quota.Principal(account="acct_ops", plan="shared")
        shared.peek(q)
        assert count(lambda: shared.acquire(q, {"requests": 1})) == 1
        shared.close()
        lim.close()
    per = ", ".join(f"{k} {v / n:g}" for k, v in sorted(inner.items()))
    print(f"\n{n} go decisions (4 limits): {n} FCALL sent; in the function per decision: {per}")


def test_one_round_trip_per_decision_on_cluster(
    request: pytest.FixtureRequest, redis_cluster_ports: list[int], clock: FakeClock
) -> None:
    """On Cluster too: one FCALL per decision on the account's node, nothing anywhere else
    (redis-py would first ask a node for the keys of each FCALL: the engine names the node)."""
    p = who("go", "acct_rt_cluster")
    n = 10
    nodes = [admin(port) for port in redis_cluster_ports]
    with quota.Limiter(ZYLO, storage_url(request, "cluster"), clock=clock) as lim:
        lim.peek(p)
        lim.acquire(p, {"requests": 0})  # loads the function library on every primary
        for node in nodes:
            node.config_resetstat()
        for _ in range(n):
            # A basic-tier model: premium ones also meet the global "upstream" budget.
            assert lim.acquire(p, cost("go", search=True), model="gpt-4o-mini").allowed
            clock.advance(7)
        stats = [node.info("commandstats") for node in nodes]
    fcall = [int(s.get("cmdstat_fcall", {}).get("calls", 0)) for s in stats]
    assert sorted(fcall) == [0, 0, n]
    assert not any("cmdstat_evalsha" in s or "cmdstat_command|getkeys" in s for s in stats)
