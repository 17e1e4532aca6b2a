"""Scenarios 1-3 and 5: decisions/s and latency of every library on Redis and in memory.

1. one limit, one request at a time; 2. the Zylo basic decision (four limits); 3. the same
with 64 concurrent callers in one event loop; 5. the floor: a bare ``EVALSHA`` of
``return 1`` through redis-py, one round trip.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .contenders import Contender, async_contenders, sync_contenders
from .shapes import ONE, ZYLO, Shape
from .timing import Decide, Result, Settings, run_async, run_sync

BACKENDS = ("redis", "memory")


@dataclass
class Env:
    port: int
    cfg: Settings
    admin: Any  # a redis-py client for FLUSHALL, INFO and the floor

    def url(self, backend: str) -> str:
        return f"redis://127.0.0.1:{self.port}/0" if backend == "redis" else "memory://"

    def flush(self) -> None:
        self.admin.flushall()

    def server_cpu(self) -> float:
        """Seconds of CPU the redis-server process has used (user + system)."""
        info = self.admin.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def command_us(self) -> float:
        """Microseconds the server has spent inside commands (``INFO commandstats``): what
        the commands themselves cost, without the event loop around them."""
        stats = self.admin.info("commandstats")
        return float(sum(int(v.get("usec", 0)) for v in stats.values() if isinstance(v, dict)))


def _failed(c: Contender, err: Exception) -> None:
    print(f"  ! {c.name} failed and is left out: {type(err).__name__}: {err}", file=sys.stderr)


def best_of(
    env: Env,
    contenders: list[Contender],
    run_one: Callable[[Contender], Result],
    redis: bool = False,
) -> list[Result]:
    """``env.cfg.rounds`` rounds, the libraries interleaved in each (a load change on the
    machine hits all alike); each run on a flushed database; per library the best round.
    ``redis``: also measure the server's CPU time per decision (robust to a busy machine)."""
    best: dict[str, Result] = {}
    failed: set[str] = set()
    for _ in range(env.cfg.rounds):
        for c in contenders:
            if c.name in failed:
                continue
            env.flush()
            cpu, inside = env.server_cpu(), env.command_us()
            try:
                r = run_one(c)
            except Exception as err:
                _failed(c, err)
                failed.add(c.name)
                best.pop(c.name, None)
                continue
            if redis:
                made = r.decisions + r.warmup
                r.server_us = (env.server_cpu() - cpu) / made * 1e6
                r.command_us = (env.command_us() - inside) / made
            if c.name not in best or r.rate > best[c.name].rate:
                best[c.name] = r
    return [best[c.name] for c in contenders if c.name in best]


def _sync_run(env: Env, c: Contender) -> Result:
    decide, close = c.make()
    try:
        return run_sync(c.name, c.note, decide, env.cfg)
    finally:
        close()


def sync_scenario(env: Env, shape: Shape, backend: str) -> list[Result]:
    contenders = sync_contenders(shape, env.url(backend))
    return best_of(env, contenders, lambda c: _sync_run(env, c), backend == "redis")


def async_scenario(env: Env, shape: Shape, backend: str) -> list[Result]:
    contenders = async_contenders(shape, env.url(backend))
    return best_of(
        env, contenders, lambda c: run_async(c.name, c.note, c.make, env.cfg), backend == "redis"
    )


FLOOR = "floor: EVALSHA 'return 1'"


def floor_contender(env: Env) -> Contender:
    """One EVALSHA of ``return 1`` per decision, through redis-py (hiredis parser)."""
    import redis

    def make() -> tuple[Decide, Callable[[], None]]:
        client: Any = redis.Redis.from_url(env.url("redis"), decode_responses=True)
        sha = client.script_load("return 1")

        def decide() -> bool:
            return bool(client.evalsha(sha, 0) == 1)

        return decide, client.close

    return Contender(FLOOR, "redis-py, sync, one round trip", make)


def floor(env: Env) -> Result:
    return best_of(env, [floor_contender(env)], lambda c: _sync_run(env, c), redis=True)[0]


def one_limit(env: Env) -> dict[str, list[Result]]:
    return {b: sync_scenario(env, ONE, b) for b in BACKENDS}


def zylo(env: Env) -> dict[str, list[Result]]:
    """Scenario 2; on Redis the floor runs in the same rounds, interleaved."""
    out = {}
    for backend in BACKENDS:
        contenders = sync_contenders(ZYLO, env.url(backend))
        if backend == "redis":
            contenders.append(floor_contender(env))
        run = best_of(env, contenders, lambda c: _sync_run(env, c), backend == "redis")
        out[backend] = run
    return out


def concurrent(env: Env) -> dict[str, list[Result]]:
    return {b: async_scenario(env, ZYLO, b) for b in BACKENDS}
