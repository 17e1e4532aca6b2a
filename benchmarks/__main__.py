"""quota and its peers side by side: ``uv run --group bench python -m benchmarks``.

Starts its own redis-server on a free port, runs the scenarios (each library on a freshly
flushed database), prints markdown tables and the issue's targets, and stops the server.

    --quick         about a minute (short measurements)
    --only NAME     one part (repeatable): one, zylo, async, blocked, floor, accuracy, memory,
                    headers, deals
    --seconds S     measured seconds per library and scenario
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from importlib import metadata

from . import accuracy, blocked, deals, headers, memory, throughput
from .server import redis_server, version
from .targets import Targets
from .timing import Result, Settings, table

PARTS = ("one", "zylo", "async", "blocked", "floor", "accuracy", "memory", "headers", "deals")
TITLES = {
    "one": "1. One limit, one request at a time",
    "zylo": "2. The Zylo basic decision: four limits (rpm sliding, rpd, tpd with 500 tokens, "
    "per-key search budget)",
    "async": "3. Async, 64 concurrent callers in one event loop, Zylo basic decision",
    "blocked": "4. A blocked client hammering (real Zylo basic plan, one account)",
    "deals": "6. Deal-shaped limits: the Zylo basic decision with an org level and a per-model"
    " limit (quota alone)",
}


def machine(port: int) -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    libs = ", ".join(
        f"{p} {metadata.version(p)}"
        for p in ("limits", "throttled-py", "pyrate-limiter", "redis", "hiredis")
    )
    return (
        f"Machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()},"
        f" redis-server {version(port)} on loopback; {libs}."
        f" Load average at start: {os.getloadavg()[0]:.1f}"
        + (" (busy machine: expect noisy figures)" if os.getloadavg()[0] > 1 else "")
    )


def print_backends(title: str, per_backend: dict[str, list[Result]], **kw: str) -> None:
    for backend, results in per_backend.items():
        print(f"\n### {title} — {'Redis' if backend == 'redis' else 'in memory'}\n")
        print(table(results, **kw))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short measurements (~1 minute)")
    parser.add_argument("--only", action="append", choices=PARTS, help="run only this part")
    parser.add_argument("--seconds", type=float, help="measured seconds per library")
    args = parser.parse_args(argv)
    parts = args.only or list(PARTS)
    cfg = Settings(seconds=0.25, rounds=1, warmup=100) if args.quick else Settings()
    if args.seconds:
        cfg.seconds = args.seconds
    import redis

    started = time.monotonic()
    targets = Targets()
    with redis_server() as port:
        env = throughput.Env(port, cfg, redis.Redis(port=port))
        print(f"# quota benchmarks\n\n{machine(port)}")
        print(
            f"Each library: {cfg.rounds} round(s), libraries interleaved, each {cfg.warmup}"
            f" warm-up decisions then {cfg.seconds} s measured, the best round shown;"
            " latency per decision with perf_counter_ns; requests cycle over 100 accounts"
            " (scenario 4: one); every run must admit every request (4: refuse)."
            " 'vs quota' = the library's decisions/s divided by quota's."
        )
        if "one" in parts:
            targets.one = throughput.one_limit(env)
            print_backends(TITLES["one"], targets.one)
        if "zylo" in parts:
            targets.zylo = throughput.zylo(env)
            print_backends(TITLES["zylo"], targets.zylo)
        if "zylo" in parts:
            targets.floor = next(r for r in targets.zylo["redis"] if r.name == throughput.FLOOR)
        elif "floor" in parts:
            targets.floor = throughput.floor(env)
        if targets.floor is not None:
            print("\n### 5. The floor: a bare EVALSHA of `return 1` through redis-py, sync\n")
            print(table([targets.floor], reference=targets.floor.name, ratio_label="x floor"))
        if "async" in parts:
            targets.concurrent = throughput.concurrent(env)
            print_backends(TITLES["async"], targets.concurrent)
        if "blocked" in parts:
            targets.blocked = blocked.blocked(env)
            print_backends(
                TITLES["blocked"],
                targets.blocked,
                reference=blocked.ALLOWED,
                ratio_label="x quota allowed path",
                extra="Redis commands",
            )
        if "deals" in parts:
            print_backends(
                TITLES["deals"], deals.run(env), reference=deals.BASIC, ratio_label="vs Zylo basic"
            )
        if "accuracy" in parts:
            print("\n### Accuracy (virtual time, in-memory storage)\n")
            try:
                text, targets.accuracy = accuracy.run()
                print(text)
            except Exception as err:
                print(f"failed: {type(err).__name__}: {err}")
        if "headers" in parts:
            print("\n### Response headers of the Zylo basic decision (in-process)\n")
            text, targets.headers_us = headers.run()
            print(text)
        if "memory" in parts:
            print("\n### Redis memory per account after a busy hour, Zylo basic\n")
            try:
                text, targets.memory = memory.run(port)
                print(text)
            except Exception as err:
                print(f"failed: {type(err).__name__}: {err}")
    print("\n### Targets (issue 14)\n")
    print(targets.render())
    print(f"\nTotal time: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
