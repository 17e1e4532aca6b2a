"""Shared fixtures: a fake clock that tests move by hand (never sleep); and the hypothesis
profiles: under ``CI=true`` the derandomised "ci" profile, elsewhere hypothesis's default."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import settings

# -- hypothesis profiles ---------------------------------------------------------------------
#
# CI must not fail at random: "ci" derives every example from the test itself (derandomize),
# keeps no example database between runs and prints the blob that reproduces a failure. Local
# runs keep hypothesis's default: random exploration, which is how new bugs are found (and the
# database replays a failure found earlier). Loaded here, before any test module is imported,
# so that every ``settings(...)`` a test module builds inherits the profile; no test may set
# ``derandomize`` itself (``pytest_collection_modifyitems`` below checks that under CI).

CI_PROFILE = "ci"
settings.register_profile(CI_PROFILE, derandomize=True, database=None, print_blob=True)


def hypothesis_profile(environ: Mapping[str, str]) -> str:
    """The profile to load: "ci" when ``CI`` is ``true`` (as CI services set it), else the
    default one."""
    return CI_PROFILE if environ.get("CI") == "true" else "default"


settings.load_profile(hypothesis_profile(os.environ))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under the "ci" profile, refuse a hypothesis test whose own settings turn derandomize
    off: it would fail at random on CI."""
    if not settings.default.derandomize:
        return
    for item in items:
        own = getattr(getattr(item, "obj", None), "_hypothesis_internal_use_settings", None)
        if own is not None and not own.derandomize:
            raise pytest.UsageError(f"{item.nodeid}: its @settings must not set derandomize")


UTC = dt.timezone.utc

#: Default start: a UTC midnight, so a test starts with a whole calendar day ahead of it.
START = dt.datetime(2026, 3, 10, tzinfo=UTC)


class FakeClock:
    """A clock for ``Limiter(clock=...)``: returns epoch seconds, moved only by the test.

    Time is kept in integer milliseconds so that stepping never accumulates float error
    (``ms / 1000`` floors back to exactly ``ms`` in the limiter).
    """

    def __init__(self, start: dt.datetime | float = START) -> None:
        self.ms = 0
        self.set(start)

    def __call__(self) -> float:
        return self.ms / 1000

    def set(self, when: dt.datetime | float) -> None:
        """Jump to an aware datetime or to epoch seconds."""
        if isinstance(when, dt.datetime):
            if when.tzinfo is None:
                raise ValueError("FakeClock.set needs an aware datetime")
            when = when.timestamp()
        self.ms = round(when * 1000)

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds`` (rounded to the millisecond)."""
        self.ms += round(seconds * 1000)

    def advance_ms(self, ms: int) -> None:
        self.ms += ms

    @property
    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.ms / 1000, UTC)


@pytest.fixture
def clock() -> FakeClock:
    """A FakeClock at 2026-03-10 00:00:00 UTC."""
    return FakeClock()


@pytest.fixture(scope="session")
def redis_port() -> Iterator[int]:
    """A real redis-server on a free port for the whole session."""
    from servers import redis_server

    with redis_server() as port:
        yield port


@pytest.fixture(scope="session")
def redis_cluster_ports() -> Iterator[list[int]]:
    """A real Redis Cluster of three masters for the whole session; yields their ports."""
    from servers import redis_cluster

    with redis_cluster() as ports:
        yield ports


_namespaces = itertools.count()

#: Every engine a behaviour test runs on: the embedded one, a real Redis, a real Cluster.
ENGINES = ["memory", "redis", "cluster"]


def storage_url(request: pytest.FixtureRequest, engine: str) -> str:
    """A URL for ``engine`` with a fresh key prefix, so tests sharing a server never meet."""
    if engine == "memory":
        return "memory://"
    prefix = f"t{next(_namespaces)}"
    if engine == "redis":
        return f"redis://127.0.0.1:{request.getfixturevalue('redis_port')}/0?prefix={prefix}"
    ports = request.getfixturevalue("redis_cluster_ports")
    return f"redis+cluster://127.0.0.1:{ports[0]}?prefix={prefix}"


@pytest.fixture(params=ENGINES)
def storage(request: pytest.FixtureRequest) -> str:
    """The storage URL of each engine in turn (tests using it run once per engine)."""
    return storage_url(request, request.param)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Any, str]]:
    """A real uvicorn server on a free port for one test module; its app is swapped per test
    through the ``AppSlot`` (see tests/http_servers.py). Yields (slot, base URL)."""
    from http_servers import AppSlot, uvicorn_server

    slot = AppSlot()
    with uvicorn_server(slot) as url:
        yield slot, url
