"""The failure policy, unit by unit, against real stores that fail: a port nothing listens on
(every call refused at once) and a real redis-server stopped and started by the test.

Time: the limiter's clock is a FakeClock; the breaker's monotonic clock is a FakeClock too, so
cool-downs pass by hand and nothing sleeps.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import FakeClock
from servers import RedisProcess, free_port

import quota
from quota.backends.breaker import CLOSED, HALF_OPEN, OPEN, Breaker
from quota.backends.budget import with_timeout
from quota.backends.fallback import default_policy, policies
from quota.backends.guard import AsyncGuardedBackend, GuardedBackend

CATALOG = quota.Catalog.load(
    {
        "plans": {
            "p": {
                "limits": [
                    {"name": "rpm", "meter": "requests", "rate": "5/minute"},
                    {"name": "tpm", "meter": "tokens", "rate": "1000/minute", "on_error": "local"},
                    {"name": "credits", "meter": "credits", "algorithm": "balance", "grant": 100},
                ]
            },
            "q": {"limits": [{"name": "rpm", "meter": "requests", "rate": "9/minute"}]},
        }
    }
)
WHO = quota.Principal(account="acct", plan="p")


class Calls:
    """An observer that keeps what it is told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.decisions: list[str] = []

    def decision(self, decision: quota.Decision, plan: str, seconds: float) -> None:
        self.decisions.append(decision.source)

    def backend_call(self, operation: str, seconds: float, ok: bool) -> None:
        self.calls.append((operation, ok))


def dead_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def limiter(url: str | None = None, **kw: Any) -> quota.Limiter:
    kw.setdefault("clock", FakeClock())
    kw.setdefault("breaker", Breaker(clock=FakeClock(0)))
    return quota.Limiter(CATALOG, url or dead_url(), **kw)


# -- policies ---------------------------------------------------------------------------------


def test_defaults_allow_rate_limits_and_deny_balances() -> None:
    assert policies(CATALOG, None) == {"rpm": "allow", "tpm": "local", "credits": "deny"}
    assert policies(CATALOG, "deny") == {"rpm": "deny", "tpm": "local", "credits": "deny"}
    assert policies(CATALOG, "allow")["credits"] == "allow"
    assert default_policy("history", "deny") == "allow"  # usage history never denies


def test_store_down_rate_limits_pass_and_balances_refuse_with_503() -> None:
    lim = limiter()
    d = lim.acquire(WHO, {"requests": 1})
    assert d.allowed and d.source == "allow"
    assert d.state("rpm").remaining == 4  # the upper bound capacity - cost: the count is unknown
    d = lim.acquire(WHO, {"requests": 1, "credits": 5})
    assert not d.allowed and d.source == "deny"
    assert d.status == 503 and d.code == "quota_unavailable"
    assert "unavailable" in (d.message or "") and d.retry_after == 1.0
    assert d.headers()["Retry-After"] == "1"
    assert (d.error_body() or {})["error"]["type"] == "server_error"  # the store, not the caller
    assert lim.guard is not None
    assert lim.guard.stats.decisions == {"local": 0, "allow": 1, "deny": 1}


def test_the_limiters_on_error_is_every_limits_default_and_a_limit_own_wins() -> None:
    deny = limiter(on_error="deny")
    d = deny.acquire(WHO, {"requests": 1})
    assert not d.allowed and d.source == "deny" and d.status == 503
    d = deny.acquire(WHO, {"tokens": 10})  # tpm says local in the plan file: it wins
    assert d.allowed and d.source == "local"
    allow = limiter(on_error="allow")
    d = allow.acquire(WHO, {"requests": 1, "credits": 1000})  # even balances pass
    assert d.allowed and d.source == "allow"


def test_local_engine_enforces_and_settles_locally() -> None:
    lim = limiter(on_error="local")
    admitted = [lim.acquire(WHO, {"requests": 1}, request_id=f"r{i}") for i in range(7)]
    assert [d.allowed for d in admitted] == [True] * 5 + [False] * 2
    assert {d.source for d in admitted} == {"local"}
    assert admitted[5].status == 429 and admitted[5].denied_by == "rpm"
    assert lim.release(admitted[0])  # by request id, in the local engine
    assert lim.acquire(WHO, {"requests": 1}).allowed
    # Recordless: the decision carries its charges; they settle in the local engine too.
    d = lim.acquire(WHO, {"tokens": 900})
    assert d.allowed and d.state("tpm").remaining == 100
    assert lim.settle(d, {"tokens": 100})
    assert lim.acquire(WHO, {"tokens": 800}).allowed  # 100 + 800 fit in 1000
    assert lim.guard is not None and lim.guard.stats.settles_dropped == 0


def test_mixed_policies_deny_charges_nothing_locally() -> None:
    lim = limiter()
    for _ in range(3):
        d = lim.acquire(WHO, {"tokens": 400, "credits": 1})
        assert not d.allowed and d.source == "deny"
    d = lim.acquire(WHO, {"tokens": 1000})  # the denials took nothing from the local tpm
    assert d.allowed and d.source == "local"


def test_peek_answers_by_policy_settles_are_dropped_operator_actions_raise() -> None:
    lim = limiter()
    states = {s.name: s for s in lim.peek(WHO)}
    assert states["rpm"].allowed and states["tpm"].remaining == 1000
    assert not states["credits"].allowed
    guard = lim.guard
    assert guard is not None and guard.stats.peeks == 1
    assert not lim.settle("r1", {"tokens": 5}, who=WHO)  # the store took nothing: dropped
    assert guard.stats.settles_dropped == 1
    with pytest.raises(quota.BackendError):
        lim.top_up(WHO, "credits", 10)
    with pytest.raises(quota.BackendError, match="circuit open"):
        lim.reset(WHO)


def test_raise_turns_the_guard_off_and_memory_needs_none() -> None:
    lim = limiter(on_error="raise")
    assert lim.guard is None
    with pytest.raises(quota.BackendError, match="ConnectionError"):
        lim.acquire(WHO, {"requests": 1})
    assert quota.Limiter(CATALOG, "memory://").guard is None


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(quota.ConfigError, match="timeout"):
        quota.Limiter(CATALOG, "memory://", timeout=0)
    with pytest.raises(quota.ConfigError, match="on_error"):
        quota.Limiter(CATALOG, "memory://", on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(quota.ConfigError, match="failures"):
        Breaker(failures=0)
    with pytest.raises(quota.ConfigError, match="cooldown"):
        Breaker(cooldown=-1)


def test_a_limit_name_keeps_one_on_error_across_plans() -> None:
    rpm = {"name": "rpm", "meter": "requests", "rate": "5/minute"}
    with pytest.raises(quota.QuotaError, match="on_error"):
        quota.Catalog.load(
            {"plans": {"a": {"limits": [rpm]}, "b": {"limits": [{**rpm, "on_error": "deny"}]}}}
        )
    with pytest.raises(quota.QuotaError, match="on_error"):
        quota.Catalog.load({"plans": {"a": {"limits": [{**rpm, "on_error": "maybe"}]}}})


def test_timeout_goes_into_redis_urls_unless_they_set_one() -> None:
    assert with_timeout("memory://", 0.1) == "memory://"
    assert with_timeout("redis://h:1/0", 0.1) == (
        "redis://h:1/0?socket_timeout=0.1&socket_connect_timeout=0.1"
    )
    assert with_timeout("redis+cluster://h:1?socket_timeout=2", 0.1) == (
        "redis+cluster://h:1?socket_timeout=2&socket_connect_timeout=0.1"
    )
    assert with_timeout("redis://h:1", None) == "redis://h:1"


# -- the breaker ------------------------------------------------------------------------------


def test_breaker_opens_after_consecutive_failures_and_probes_once() -> None:
    mono = FakeClock(0)
    b = Breaker(failures=3, cooldown=0.5, clock=mono)
    b.failure()
    b.failure()
    b.success()  # consecutive failures only
    for _ in range(3):
        assert b.allow()
        b.failure()
    assert b.state == OPEN and not b.allow() and b.retry_in() == 0.5
    mono.advance(0.5)
    assert b.allow() and b.state == HALF_OPEN  # the probe
    assert not b.allow()  # only one
    b.failure()
    assert b.state == OPEN and not b.allow()
    mono.advance(0.5)
    assert b.allow()
    mono.advance(0.5)  # that probe never reported (its caller was cancelled): another one
    assert b.allow()
    b.success()
    assert b.state == CLOSED and b.allow() and b.opened == 2


def test_an_open_breaker_spares_the_store_and_a_probe_brings_it_back() -> None:
    mono = FakeClock(0)
    seen = Calls()
    with RedisProcess() as server:
        url = f"redis://127.0.0.1:{server.port}/0?prefix=brk"
        lim = limiter(url, breaker=Breaker(3, 0.5, mono), observer=seen)
        assert lim.acquire(WHO, {"requests": 1}).source == "engine"
        server.kill()
        sources = [lim.acquire(WHO, {"requests": 1}).source for _ in range(10)]
        assert sources == ["allow"] * 10
        assert seen.calls == [("acquire", True)] + [("acquire", False)] * 3  # then no call
        guard = lim.guard
        assert guard is not None and guard.stats.short_circuited == 7
        assert guard.stats.failures == 3
        mono.advance(0.5)
        assert lim.acquire(WHO, {"requests": 1}).source == "allow"  # the probe failed
        assert seen.calls[-1] == ("acquire", False) and guard.breaker.state == OPEN
        server.start()
        assert lim.acquire(WHO, {"requests": 1}).source == "allow"  # still cooling down
        mono.advance(0.5)
        d = lim.acquire(WHO, {"requests": 1})
        assert d.source == "engine" and d.state("rpm").remaining == 4  # empty server
        assert guard.breaker.state == CLOSED and seen.calls[-1] == ("acquire", True)
        # The limiter reports decisions; store calls come from the guard only.
        assert len(seen.decisions) == 14 and seen.decisions[0] == "engine"
        lim.close()


def test_charges_made_without_the_store_never_settle_against_it() -> None:
    mono = FakeClock(0)
    with RedisProcess() as server:
        url = f"redis://127.0.0.1:{server.port}/0?prefix=chg"
        lim = limiter(url, breaker=Breaker(1, 0.5, mono))
        assert lim.acquire(WHO, {"requests": 4}).source == "engine"
        server.kill()
        d = lim.acquire(WHO, {"requests": 1, "tokens": 500})
        assert d.allowed and d.source == "local"
        server.start()  # empty again; refill it through the engine
        mono.advance(0.5)
        assert lim.acquire(WHO, {"requests": 4}).source == "engine"
        assert lim.release(d)  # rpm was "allow": made nowhere; tpm was local: settled there
        left = {s.name: s.remaining for s in lim.peek(WHO)}
        assert left["rpm"] == 1  # the store's count was not touched by the release
        assert lim.guard is not None
        assert lim.guard.fallback.local.dump() == {}  # the local tpm charge was released
        lim.close()


# -- asyncio ----------------------------------------------------------------------------------


def test_async_policies_and_breaker() -> None:
    async def run() -> None:
        mono = FakeClock(0)
        seen = Calls()
        async with quota.AsyncLimiter(
            CATALOG, dead_url(), clock=FakeClock(), breaker=Breaker(2, 0.5, mono), observer=seen
        ) as lim:
            assert isinstance(lim.backend, AsyncGuardedBackend)
            d = await lim.acquire(WHO, {"requests": 1, "tokens": 10})
            assert d.allowed and d.source == "local"
            d = await lim.acquire(WHO, {"credits": 1})
            assert d.status == 503 and d.source == "deny"
            d = await lim.acquire(WHO, {"requests": 1})
            assert d.source == "allow"
            assert seen.calls == [("acquire", False)] * 2  # then the breaker opened
            assert {s.name for s in await lim.peek(WHO)} == {"rpm", "tpm", "credits"}
            with pytest.raises(quota.BackendError):
                await lim.top_up(WHO, "credits", 5)
            assert not await lim.settle("x", {"requests": 1}, who=WHO)

    asyncio.run(run())


def test_a_sync_guard_is_a_backend() -> None:
    lim = limiter()
    assert isinstance(lim.backend, GuardedBackend)
    assert lim.backend.primary is not None and lim.timeout == 1.0
