"""Where quota's Zylo basic decision spends its time: a pyinstrument profile of the sync
``Limiter.acquire`` on ``memory://`` and on ``redis://`` (its own redis-server).

    uv run --group bench python -m benchmarks.profile [--decisions N]
"""

from __future__ import annotations

import argparse
from typing import Any

from .contenders import quota_sync
from .server import redis_server
from .shapes import ZYLO


def profile(url: str, decisions: int) -> str:
    from pyinstrument import Profiler

    decide, close = quota_sync(ZYLO, url)()
    try:
        for _ in range(500):
            decide()
        profiler = Profiler(interval=0.0001)
        profiler.start()
        for _ in range(decisions):
            decide()
        profiler.stop()
    finally:
        close()
    return str(profiler.output_text(unicode=True, color=False, show_all=False))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--decisions", type=int, default=20_000)
    args = parser.parse_args(argv)
    print(f"## memory://, {args.decisions} Zylo basic decisions\n")
    print(profile("memory://", args.decisions))
    with redis_server() as port:
        import redis

        admin: Any = redis.Redis(port=port)
        admin.config_resetstat()
        print(f"## redis://, {args.decisions} Zylo basic decisions\n")
        print(profile(f"redis://127.0.0.1:{port}/0", args.decisions))
        stats = admin.info("commandstats")
        for name in ("cmdstat_fcall", "cmdstat_evalsha", "cmdstat_eval", "cmdstat_time"):
            if name in stats:
                s = stats[name]
                print(f"server side: {name[8:]} x{s['calls']}, {s['usec_per_call']} µs per call")


if __name__ == "__main__":
    main()
