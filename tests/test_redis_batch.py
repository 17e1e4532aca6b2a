"""Auto-batching of the asyncio Redis engine, on a real server and a real Cluster.

Concurrent decisions of one event loop go out as pipelines: exact all the same (each call is
its own atomic script), fewer round trips, and NOSCRIPT inside a pipeline reloads and retries.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
import redis
from conftest import FakeClock

import quota
from quota.backends.redis import AsyncRedisBackend

CATALOG = quota.Catalog.load(
    {
        "meters": {"names": ["requests", "tokens"]},
        "plans": {
            "p": {
                "limits": [
                    {"name": "rpm", "meter": "requests", "rate": "50/minute"},
                    {"name": "tpd", "meter": "tokens", "algorithm": "calendar", "rate": "9000/day"},
                ]
            }
        },
    }
)
_names = itertools.count()


def _url(request: pytest.FixtureRequest, engine: str, *query: str) -> str:
    q = "&".join([f"prefix=b{next(_names)}", *query])
    if engine == "redis":
        return f"redis://127.0.0.1:{request.getfixturevalue('redis_port')}/0?{q}"
    ports = request.getfixturevalue("redis_cluster_ports")
    return f"redis+cluster://127.0.0.1:{ports[0]}?{q}"


def _flush_scripts(request: pytest.FixtureRequest, engine: str) -> None:
    if engine == "redis":
        ports = [request.getfixturevalue("redis_port")]
    else:
        ports = request.getfixturevalue("redis_cluster_ports")
    for port in ports:
        with redis.Redis(port=port) as client:
            client.script_flush()


async def _hammer(lim: quota.AsyncLimiter, accounts: int, each: int) -> list[quota.Decision]:
    who = [quota.Principal(account=f"acct-{i}", plan="p") for i in range(accounts)]
    calls = [lim.acquire(w, {"requests": 1, "tokens": 100}) for w in who for _ in range(each)]
    return list(await asyncio.gather(*calls))


@pytest.mark.parametrize("engine", ["redis", "cluster"])
def test_concurrent_decisions_share_pipelines_and_stay_exact(
    request: pytest.FixtureRequest, engine: str
) -> None:
    async def run() -> tuple[list[quota.Decision], Any]:
        clock = FakeClock()
        async with quota.AsyncLimiter(CATALOG, _url(request, engine), clock=clock) as lim:
            backend = lim.backend.primary  # the engine behind the failure guard
            assert isinstance(backend, AsyncRedisBackend) and backend.batcher is not None
            decisions = await _hammer(lim, accounts=8, each=64)
            return decisions, backend.batcher

    decisions, batcher = asyncio.run(run())
    per_account = [decisions[i * 64 : (i + 1) * 64] for i in range(8)]
    assert [sum(d.allowed for d in ds) for ds in per_account] == [50] * 8
    assert all(d.denied_by == "rpm" for ds in per_account for d in ds[50:])
    assert batcher.calls == 512
    assert batcher.pipelines <= 512 // 8  # many calls per round trip


@pytest.mark.parametrize("engine", ["redis", "cluster"])
def test_noscript_inside_a_pipeline_reloads_and_retries(
    request: pytest.FixtureRequest, engine: str
) -> None:
    async def run() -> list[int]:
        clock = FakeClock()
        admitted = []
        async with quota.AsyncLimiter(CATALOG, _url(request, engine), clock=clock) as lim:
            for _ in range(3):
                _flush_scripts(request, engine)
                decisions = await _hammer(lim, accounts=4, each=5)
                admitted.append(sum(d.allowed for d in decisions))
        return admitted

    assert asyncio.run(run()) == [20, 20, 20]


def test_batching_can_be_turned_off(request: pytest.FixtureRequest) -> None:
    async def run() -> int:
        async with quota.AsyncLimiter(
            CATALOG, _url(request, "redis", "batch=0"), clock=FakeClock(), on_error="raise"
        ) as lim:
            assert isinstance(lim.backend, AsyncRedisBackend) and lim.backend.batcher is None
            return sum(d.allowed for d in await _hammer(lim, accounts=2, each=60))

    assert asyncio.run(run()) == 100


def test_a_bad_batch_option_is_a_config_error() -> None:
    with pytest.raises(quota.ConfigError, match=r"bad value .maybe. for batch"):
        quota.AsyncLimiter(CATALOG, "redis://127.0.0.1:1/0?batch=maybe")


def test_one_server_batches_into_one_script_call_and_isolates_a_failing_call(
    redis_port: int,
) -> None:
    """On one server a batch is ONE EVALSHA (the script's "batch" command; a turn's calls are
    split into a few batches so that the server and this process overlap); a call that fails
    inside a batch fails alone, and the others are answered."""
    server = redis.Redis(port=redis_port)

    async def run() -> tuple[list[Any], int]:
        url = f"redis://127.0.0.1:{redis_port}/0?prefix=b{next(_names)}"
        async with quota.AsyncLimiter(CATALOG, url, clock=FakeClock()) as lim:
            backend = lim.backend.primary
            assert isinstance(backend, AsyncRedisBackend) and backend.batcher is not None
            batcher = backend.batcher
            await _hammer(lim, accounts=1, each=1)  # connected, script loaded
            server.config_resetstat()
            before = batcher.pipelines
            decisions = await _hammer(lim, accounts=16, each=4)
            assert all(d.allowed for d in decisions)
            evalsha = int(server.info("commandstats")["cmdstat_evalsha"]["calls"])
            # 64 decisions in one turn: split into SPREAD batches, one script call each.
            assert evalsha == batcher.pipelines - before == batcher.SPREAD
            good = ["peek", 0, "0", 0]  # a peek of no ops: an empty reply
            results = await asyncio.gather(
                batcher.call([], good),
                batcher.call([], ["no_such_command"]),
                batcher.call([], good),
                return_exceptions=True,
            )
            return results, evalsha

    results, _ = asyncio.run(run())
    assert results[0] == [] and results[2] == []
    assert isinstance(results[1], quota.BackendError)
    server.close()
