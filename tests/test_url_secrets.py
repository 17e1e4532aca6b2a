"""A password in a storage URL never shows: not in a ConfigError (bad options, malformed
URLs), not in a BackendError (an unreachable server, a wrong password) nor in its traceback,
not in a log line. The message quotes the URL redacted (``***`` in the password's place), so it
still says which URL is wrong. Real servers, no mocks; the CLI's side is in
tests/test_cli_ops.py (exit 2 and 3 with a password in ``--backend``)."""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Any

import pytest
import redis
from conftest import FakeClock
from servers import free_port, redis_server

import quota
from quota.backends.redis.connect import parse
from quota.backends.urls import redact

ZYLO = quota.Catalog.load("zylo")
WHO = quota.Principal(account="acct_pw", plan="basic")
PW = "s3cret-Pa55"
FLAVOURS = [quota.Limiter, quota.AsyncLimiter]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:s3cret@127.0.0.1:1/0", "redis://user:***@127.0.0.1:1/0"),
        ("rediss+cluster://:pw@host", "rediss+cluster://:***@host"),
        ("redis+sentinel://:pw@h1:26379,h2:26379/mymaster/0",
         "redis+sentinel://:***@h1:26379,h2:26379/mymaster/0"),
        ("valkeys://u:p%40ss@h:6380/1?prefix=x", "valkeys://u:***@h:6380/1?prefix=x"),
        ("redis://pw-alone@h", "redis://***@h"),  # a password in the user's place, maybe
        ("redis://h:1/0?password=pw&prefix=x", "redis://h:1/0?password=***&prefix=x"),
        ("redis://:p@ss/w#rd@h:1/0", "redis://:***@h:1/0"),  # unencoded: still hidden
        ("redis://:pa?ss@h:1/0", "redis://:***@h:1/0"),
        ("redis://h:1/0?client_name=a@b", "redis://h:1/0?client_name=a@b"),  # no password
        ("memory://", "memory://"),
        ("redis+unix:///tmp/redis.sock?db=2", "redis+unix:///tmp/redis.sock?db=2"),
    ],
)  # fmt: skip
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown


def _no_password(text: str) -> None:
    assert PW not in text and PW.replace("-", "%2D") not in text, text


# -- configuration errors --------------------------------------------------------------------

BAD = [
    (f"redis://user:{PW}@127.0.0.1:1/0?colour=blue", "unknown option 'colour'"),
    (f"rediss+cluster://:{PW}@host:6379?db=2", "Redis Cluster has only database 0"),
    (f"redis+sentinel://:{PW}@h1:26379,h2:26379", "needs a service name"),
    (f"redis+sentinel://:{PW}@h1:26379/svc/x", "bad database number 'x'"),
    (f"redis+cluster://:{PW}@h:x", "bad host:port 'h:x'"),
    (f"redis://:{PW}@h:1?socket_timeout=soon", "bad value 'soon' for socket_timeout"),
    (f"redis://:{PW}@h:notaport", "bad port"),
    (f"redis://:{PW}@h:1?ssl_certfile=x", "ssl_* options need a TLS scheme"),
    (f"valkey://u:{PW}@h:1/zero", "bad database number 'zero'"),
    (f"nosuch://:{PW}@h", "unknown storage URL"),
    (f"redis://h:1/0?password={PW}", "unknown option 'password'"),
    # Malformed: an unencoded '#' cuts the password into what looks like a port.
    (f"redis+cluster://:{PW}#x@h:1", "bad host:port '***'"),
]


@pytest.mark.parametrize(("url", "names"), BAD)
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_config_errors_quote_the_url_redacted(
    flavour: type[Any], url: str, names: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(quota.ConfigError) as caught:
        flavour(ZYLO, url)
    text = str(caught.value)
    assert names in text and "***" in text, text
    _no_password(text)
    _no_password("".join(traceback.format_exception(caught.value)))
    _no_password(caplog.text)


def test_a_parsed_target_does_not_show_its_password() -> None:
    for url in (f"redis://u:{PW}@h:1/0", f"redis+cluster://:{PW}@h:1",
                f"redis+sentinel://:{PW}@h:1/svc"):  # fmt: skip
        target = parse(url)
        assert target.password == PW or PW in target.url
        _no_password(repr(target))


# -- store errors ----------------------------------------------------------------------------


def _backend_error(flavour: type[Any], url: str, on_error: Any = "raise") -> quota.BackendError:
    """The BackendError of a peek (on_error="raise") or of a reset (any policy) on ``url``."""

    async def run_async() -> None:
        async with quota.AsyncLimiter(ZYLO, url, clock=FakeClock(), on_error=on_error) as lim:
            for _ in range(6):  # enough failures to open the breaker (and log it)
                await lim.peek(WHO)
            await lim.reset(WHO)

    def run_sync() -> None:
        with quota.Limiter(ZYLO, url, clock=FakeClock(), on_error=on_error) as lim:
            for _ in range(6):
                lim.peek(WHO)
            lim.reset(WHO)

    with pytest.raises(quota.BackendError) as caught:
        run_sync() if flavour is quota.Limiter else asyncio.run(run_async())
    return caught.value


def _check_error(exc: quota.BackendError, caplog: pytest.LogCaptureFixture) -> None:
    _no_password(str(exc))
    _no_password("".join(traceback.format_exception(exc)))  # what log.exception would write
    _no_password(caplog.text)


UNREACHABLE = ["redis://ops:{pw}@127.0.0.1:{port}/0", "rediss://:{pw}@127.0.0.1:{port}/0",
               "redis+cluster://:{pw}@127.0.0.1:{port}",
               "rediss+cluster://:{pw}@127.0.0.1:{port}"]  # fmt: skip


@pytest.mark.parametrize("template", UNREACHABLE)
@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("on_error", ["raise", None])
def test_an_unreachable_server_is_reported_without_the_password(
    template: str, flavour: type[Any], on_error: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = template.format(pw=PW, port=free_port()) + "?socket_connect_timeout=0.2"
    _check_error(_backend_error(flavour, url, on_error), caplog)
    if on_error is None:  # the guard opened its breaker and said so
        assert "circuit open" in caplog.text


def test_an_unreachable_sentinel_is_reported_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Sync only: redis-py takes seconds to give up on a dead Sentinel (its own retries), and
    the message is built the same way in both flavours: the Sentinel clients' reprs."""
    caplog.set_level(logging.DEBUG)
    url = f"redis+sentinel://:{PW}@127.0.0.1:{free_port()}/mymaster?socket_connect_timeout=0.2"
    exc = _backend_error(quota.Limiter, url)
    assert "No master found for 'mymaster'" in str(exc)
    _check_error(exc, caplog)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_wrong_password_is_reported_without_it(
    flavour: type[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with redis_server() as port:  # a server of this test's own: it gets a password
        redis.Redis(port=port).config_set("requirepass", "the-right-one")
        for url in (f"redis://:{PW}@127.0.0.1:{port}/0", f"redis://bob:{PW}@127.0.0.1:{port}/0",
                    f"redis+cluster://:{PW}@127.0.0.1:{port}"):  # fmt: skip
            exc = _backend_error(flavour, url)
            assert "invalid username-password pair" in str(exc)
            _check_error(exc, caplog)
