"""Several processes deciding at once: start ``count`` workers that wait at one barrier, then
collect one reply each from a queue. The 8-process tests of the Redis engine, the org levels
and the webhooks all run this way."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any


def context() -> Any:
    """fork where the platform has it (fast; the workers inherit the test's imports)."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


def run_workers(
    target: Callable[..., None], args: Callable[[int], tuple[Any, ...]], count: int
) -> list[Any]:
    """Run ``target(*args(i), barrier, results)`` in ``count`` processes; return what each put
    on ``results`` (in arrival order) once every process has exited cleanly."""
    ctx = context()
    barrier, results = ctx.Barrier(count), ctx.Queue()
    workers = [ctx.Process(target=target, args=(*args(i), barrier, results)) for i in range(count)]
    for w in workers:
        w.start()
    try:
        replies = [results.get(timeout=120) for _ in workers]
    finally:
        for w in workers:
            w.join(timeout=30)
    assert all(w.exitcode == 0 for w in workers), [w.exitcode for w in workers]
    return replies
