"""TLS (``rediss://``) and a least-privilege ACL user, on real servers.

A redis-server with a TLS port and a throw-away CA (made with ``openssl``) serves the whole
API, sync and async. An ACL user holding exactly ``ACL_RULES`` runs every operation; taking away
any one right makes the operation that needs it fail with a ``quota.BackendError`` (the ACL
log names the refused command), which proves that each right is needed.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import tempfile
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import redis
from conftest import FakeClock
from servers import make_tls_certs, redis_tls_server

import quota
from quota.backends.redis.codec import ENGINE, LIBRARY

#: Store errors raise BackendError here (no failure policy answers in their place).
RAISE = "raise"

ZYLO = quota.Catalog.load("zylo")
_runs = itertools.count()

#: The rights of the user the library runs as on one server (README, "Redis ACL").
COMMANDS = [
    "evalsha", "eval", "fcall", "function|load", "time",
    "get", "set", "hget", "hmget", "hset", "hdel", "pexpire", "pttl",
]  # fmt: skip
#: Without these the acquires fall back from the function library to the script: all works.
FUNCTIONS = ["fcall", "function|load"]
#: Redis Cluster adds what redis-py's cluster client asks at start-up, and DEL (the undo of a
#: decision whose global slot denied).
CLUSTER_COMMANDS = [*COMMANDS, "del", "cluster|slots", "command"]
KEYS = "~quota:*"


def acl(commands: list[str], keys: str = KEYS) -> list[str]:
    return ["reset", "on", ">pw-quota", keys, *(f"+{c}" for c in commands)]


@pytest.fixture(scope="module")
def tls() -> Iterator[tuple[int, int, str]]:
    """(plain admin port, TLS port, CA file) of a TLS redis-server for this module."""
    with tempfile.TemporaryDirectory(prefix="quota-tls-") as workdir:
        certs = make_tls_certs(workdir)
        with redis_tls_server(certs) as (port, tls_port):
            yield port, tls_port, certs["ca"]


def url(tls: tuple[int, int, str], user: str = "", extra: str = "") -> str:
    _, tls_port, ca = tls
    auth = f"{user}:pw-quota@" if user else ""
    return f"rediss://{auth}127.0.0.1:{tls_port}/0?ssl_ca_certs={ca}{extra}"


def fresh() -> quota.Principal:
    """A new account for each run, so runs sharing the server never meet."""
    n = next(_runs)
    return quota.Principal(account=f"acct_tls{n}", plan="go", key=f"sk-tls{n}")


def run_sync(limiter: quota.Limiter, clock: FakeClock) -> None:
    """Every operation of the API once, with checks that can fail."""
    who = fresh()
    first = limiter.acquire(who, {"requests": 1, "tokens": 900, "search": 1}, request_id="r1")
    assert first.allowed
    assert limiter.acquire(who, {"requests": 1, "tokens": 900}, request_id="r1").replayed
    assert limiter.settle(first, {"tokens": 400})
    plain = limiter.acquire(who, {"requests": 1, "tokens": 100})
    assert limiter.release(plain)
    states = {s.name: s for s in limiter.peek(who)}
    assert states["tpd"].remaining == 512_000 - 400
    assert states["search"].remaining == 9
    assert limiter.top_up(who, "credits", 5) == 10_000_005
    clock.advance(1)
    limiter.reset(who, include_balance=True)
    assert {s.name: s.remaining for s in limiter.peek(who)}["tpd"] == 512_000


async def run_async(limiter: quota.AsyncLimiter, clock: FakeClock) -> None:
    who = fresh()
    first = await limiter.acquire(who, {"requests": 1, "tokens": 900}, request_id="a1")
    assert first.allowed
    assert await limiter.settle(first, {"tokens": 300})
    assert {s.name: s.remaining for s in await limiter.peek(who)}["tpd"] == 512_000 - 300
    assert await limiter.top_up(who, "credits", 7) == 10_000_007
    await limiter.reset(who, include_balance=True)
    assert {s.name: s.remaining for s in await limiter.peek(who)}["tpd"] == 512_000


def run_all(address: str) -> None:
    with quota.Limiter(ZYLO, address, clock=FakeClock(), on_error=RAISE) as limiter:
        run_sync(limiter, FakeClock())

    async def main() -> None:
        async with quota.AsyncLimiter(ZYLO, address, clock=FakeClock(), on_error=RAISE) as limiter:
            await run_async(limiter, FakeClock())

    asyncio.run(main())


def test_tls_serves_the_whole_api_sync_and_async(tls: tuple[int, int, str]) -> None:
    run_all(url(tls))
    with quota.Limiter(
        ZYLO, url(tls), on_error=RAISE
    ) as limiter:  # the server's clock, measured over TLS
        assert limiter.acquire(fresh(), {"requests": 1}).allowed
        backend: Any = limiter.backend
        assert backend.server_clock.measured


def test_tls_refuses_plain_text_and_unknown_certificates(tls: tuple[int, int, str]) -> None:
    _, tls_port, _ = tls
    plain = f"redis://127.0.0.1:{tls_port}/0?socket_timeout=0.5"
    with (
        quota.Limiter(ZYLO, plain, clock=FakeClock(), on_error=RAISE) as limiter,
        pytest.raises(quota.BackendError),
    ):
        limiter.acquire(fresh(), {"requests": 1})
    untrusted = f"rediss://127.0.0.1:{tls_port}/0"  # the system CAs do not know the test CA
    with (
        quota.Limiter(ZYLO, untrusted, clock=FakeClock(), on_error=RAISE) as limiter,
        pytest.raises(quota.BackendError, match=r"(?i)certificate"),
    ):
        limiter.acquire(fresh(), {"requests": 1})
    with pytest.raises(quota.ConfigError, match="TLS"):
        quota.Limiter(ZYLO, f"redis://127.0.0.1:{tls_port}/0?ssl_ca_certs=/x", on_error=RAISE)


def test_the_rules_cover_every_command_the_scripts_call() -> None:
    lua = resources.files("quota") / "backends" / "redis" / "lua"
    files = {*ENGINE.files, *LIBRARY.files}  # the script and the function library
    text = "".join((lua / name).read_text() for name in files)
    called = {c.lower() for c in re.findall(r'redis\.call\("([A-Z]+)"', text)}
    # DEL serves only the Cluster undo; on one server a decision never needs it. Equality
    # both ways: when the scripts change, update COMMANDS and the ACL line in README.md.
    documented = set(COMMANDS) - {"evalsha", "eval", "time", *FUNCTIONS}
    assert called - {"del"} == documented, "update COMMANDS and README.md's ACL line"
    assert called <= set(CLUSTER_COMMANDS)


def admin(tls: tuple[int, int, str]) -> redis.Redis:
    return redis.Redis(port=tls[0], decode_responses=True)


def refused(client: redis.Redis) -> set[str]:
    entries = client.execute_command("ACL", "LOG")
    return {str(dict(zip(e[::2], e[1::2], strict=True))["object"]) for e in entries}


def refusals(client: redis.Redis) -> int:
    """How many commands the ACL refused (the log counts repeats of one entry)."""
    entries = client.execute_command("ACL", "LOG")
    return sum(int(dict(zip(e[::2], e[1::2], strict=True))["count"]) for e in entries)


def test_acl_user_with_exactly_the_rights_runs_everything(tls: tuple[int, int, str]) -> None:
    client = admin(tls)
    client.execute_command("ACL", "SETUSER", "quota_min", *acl(COMMANDS))
    client.execute_command("ACL", "LOG", "RESET")
    client.script_flush()  # the first call must load the script through EVAL
    client.function_flush()  # and the first acquire the library through FUNCTION LOAD
    run_all(url(tls, "quota_min"))
    assert client.execute_command("FUNCTION", "LIST", "LIBRARYNAME", LIBRARY.name)
    with quota.Limiter(ZYLO, url(tls, "quota_min"), on_error=RAISE) as limiter:
        assert limiter.acquire(fresh(), {"requests": 1}).allowed
        assert limiter.backend.server_clock.measured  # type: ignore[attr-defined]
    assert refused(client) == set()


@pytest.mark.parametrize("missing", [*COMMANDS, KEYS])
def test_each_right_is_needed(tls: tuple[int, int, str], missing: str) -> None:
    client = admin(tls)
    rules = (
        acl(COMMANDS, "~other:*") if missing == KEYS else acl([c for c in COMMANDS if c != missing])
    )
    client.execute_command("ACL", "SETUSER", "quota_less", *rules)
    client.execute_command("ACL", "LOG", "RESET")
    client.script_flush()
    client.function_flush()
    address = url(tls, "quota_less")
    if missing in FUNCTIONS:  # the acquires fall back to the script (EVALSHA): all works
        run_all(address)
        before = refusals(client)
        with quota.Limiter(ZYLO, address, clock=FakeClock(), on_error=RAISE) as limiter:
            assert limiter.acquire(fresh(), {"requests": 1}).allowed
            assert limiter.backend.functions.usable is False  # type: ignore[attr-defined]
            assert limiter.acquire(fresh(), {"requests": 1}).allowed
        assert refused(client) == {missing}
        assert refusals(client) == before + 1  # refused once per client, then remembered
        return
    if missing == "time":  # without TIME the limiter keeps working on the local clock
        with quota.Limiter(ZYLO, address, on_error=RAISE) as limiter:
            assert limiter.acquire(fresh(), {"requests": 1}).allowed
            assert not limiter.backend.server_clock.measured  # type: ignore[attr-defined]
        assert refused(client) == {"time"}
        return
    with pytest.raises(quota.BackendError, match=r"(?i)permission|can't run"):
        run_all(address)
    if missing == KEYS:
        assert any(name.startswith("quota:") for name in refused(client))
    else:
        assert refused(client) == {missing}


def test_acl_user_on_cluster(redis_cluster_ports: list[int]) -> None:
    """The Cluster rules run the whole API; without CLUSTER SLOTS the client cannot start."""
    clients = [redis.Redis(port=p, decode_responses=True) for p in redis_cluster_ports]
    first = f"127.0.0.1:{redis_cluster_ports[0]}"
    for client in clients:
        client.execute_command("ACL", "SETUSER", "quota_cl", *acl(CLUSTER_COMMANDS))
    run_all(f"redis+cluster://quota_cl:pw-quota@{first}")
    for client in clients:
        rules = acl([c for c in CLUSTER_COMMANDS if c != "cluster|slots"])
        client.execute_command("ACL", "SETUSER", "quota_cl2", *rules)
    address = f"redis+cluster://quota_cl2:pw-quota@{first}"
    with quota.Limiter(ZYLO, address, on_error=RAISE) as limiter, pytest.raises(quota.BackendError):
        limiter.acquire(fresh(), {"requests": 1})
