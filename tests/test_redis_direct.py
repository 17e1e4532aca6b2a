"""Script calls sent on the client's own connections (``quota.backends.redis.direct``): which
clients qualify, and that redis-py's guarantees hold without its per-command layers: a dead
idle connection is replaced, a timeout is not retried, an error reply keeps the connection,
a forked child never reads its parent's socket."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
import redis
from conftest import FakeClock
from redis.sentinel import SentinelConnectionPool
from servers import RedisProcess, redis_server, server_pid

import quota
from quota.backends.redis import RedisBackend
from quota.backends.redis.direct import Direct

COST = {"requests": 1, "tokens": 10}


def _who(n: int) -> quota.Principal:
    return quota.Principal(account=f"direct-{n}", plan="basic", key=f"sk-{n}")


def _fcalls(admin: redis.Redis) -> int:
    stats = admin.info("commandstats").get("cmdstat_fcall", {})
    return int(stats.get("calls", 0))


@pytest.fixture
def port() -> Iterator[int]:
    with redis_server() as p:
        yield p


def test_only_a_plain_client_qualifies(port: int) -> None:
    plain = redis.Redis(port=port)
    assert Direct.fits(plain)
    blocking = redis.Redis(connection_pool=redis.BlockingConnectionPool(port=port))
    assert not Direct.fits(blocking)
    single = redis.Redis(port=port, single_connection_client=True)
    assert not Direct.fits(single)
    watched = redis.Redis(connection_pool=SentinelConnectionPool("m", object()))
    assert not Direct.fits(watched)
    for client in (plain, blocking, single):
        client.close()


def test_decisions_go_direct_and_reuse_one_connection(port: int, clock: FakeClock) -> None:
    backend = RedisBackend.from_url(f"redis://127.0.0.1:{port}/0")
    lim = quota.Limiter("zylo", backend, clock=clock)
    admin = redis.Redis(port=port)
    assert lim.acquire(_who(0), COST).allowed  # loads the library
    before = _fcalls(admin)
    for n in range(1, 21):
        assert lim.acquire(_who(n), COST).allowed
    assert backend.direct is not None
    assert len(backend.direct.idle) == 1  # one caller at a time: one connection
    assert _fcalls(admin) - before == 20
    lim.close()
    assert backend.direct.idle == []
    admin.close()


def test_a_restarted_server_is_reached_on_a_new_connection(clock: FakeClock) -> None:
    with RedisProcess() as server:
        lim = quota.Limiter("zylo", f"redis://127.0.0.1:{server.port}/0", clock=clock)
        assert lim.acquire(_who(1), COST).source == "engine"
        server.restart()
        # The idle connection is dead; the call is sent once more on a fresh one.
        decision = lim.acquire(_who(2), COST)
        assert decision.allowed and decision.source == "engine"
        lim.close()


def test_a_timeout_is_not_sent_again(port: int, clock: FakeClock) -> None:
    """The server stopped (SIGSTOP) while a decision waits: the call times out and the failure
    policy answers; once the server runs again it finds that one FCALL in its socket, never a
    second one (a timeout is not sent again)."""
    url = f"redis://127.0.0.1:{port}/0?socket_timeout=0.2"
    lim = quota.Limiter("zylo", url, clock=clock, on_error="deny")
    assert lim.acquire(_who(1), COST).source == "engine"
    admin = redis.Redis(port=port)
    before = _fcalls(admin)
    pid = server_pid(port)
    os.kill(pid, signal.SIGSTOP)
    try:
        decision = lim.acquire(_who(2), COST)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert decision.source == "deny"  # the failure policy answered, once
    assert lim.acquire(_who(3), COST).source == "engine"  # on a new connection
    # #3, and the timed-out FCALL at most once (the resumed server finds it in its socket):
    # sent again, it would make three.
    assert 1 <= _fcalls(admin) - before <= 2
    lim.close()
    admin.close()


def test_an_error_reply_keeps_the_connection(port: int, clock: FakeClock) -> None:
    backend = RedisBackend.from_url(f"redis://127.0.0.1:{port}/0?prefix=wrong")
    lim = quota.Limiter("zylo", backend, clock=clock)
    assert lim.acquire(_who(1), COST).allowed
    admin = redis.Redis(port=port)
    for key in admin.scan_iter(match="wrong:*"):
        admin.delete(key)
        admin.set(key, "not a hash")
    with pytest.raises(quota.BackendError, match="WRONGTYPE"):
        backend.acquire(*_raw_acquire(lim, _who(1)))
    assert backend.direct is not None and len(backend.direct.idle) == 1
    assert lim.acquire(_who(2), COST).source == "engine"
    lim.close()
    admin.close()


def _raw_acquire(lim: quota.Limiter, who: quota.Principal) -> tuple[int, str, tuple, None, int]:
    prep = lim.planner.prepare(who, COST, round(lim.clock() * 1000), None, None, None)
    assert not isinstance(prep, tuple)
    return prep.now, prep.slot, prep.ops, None, lim.reservation_ttl_ms


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_uses_its_own_connection(port: int, clock: FakeClock) -> None:
    lim = quota.Limiter("zylo", f"redis://127.0.0.1:{port}/0", clock=clock)
    assert lim.acquire(_who(1), COST).allowed  # the parent holds an idle connection
    pid = os.fork()
    if pid == 0:  # the child: a decision of its own, then exit without cleanup
        ok = lim.acquire(_who(2), COST).source == "engine"
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    for n in range(3, 6):  # the parent's connection was not read by the child
        decision = lim.acquire(_who(n), COST)
        assert decision.allowed and decision.source == "engine"
    assert {s.name: s.remaining for s in lim.peek(_who(2))}["rpm"] == 10 - 1
    lim.close()
