"""``quota simulate``: the command around the simulation (``quota.cli.simulation``).

It reads the cost of one request from ``--tokens`` and ``--cost``, runs the simulation (with a
progress bar on a terminal), and prints the result as a table or, with ``--json``, as JSON for
scripts; ``--plot`` also draws the remaining budgets as a PNG (``quota.cli.plot``, matplotlib).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..catalog import Catalog
from ..errors import ConfigError
from . import plot
from .exits import EXIT_OK
from .simulation import ProgressBar, Result, simulate
from .tables import Row, render, terminal_width


def cmd_simulate(args: argparse.Namespace) -> int:
    """Simulate, then print (and plot). Without matplotlib, ``--plot`` fails before the run."""
    if args.plot:
        plot.require_matplotlib()
    catalog = Catalog.load(args.catalog)
    cost = parse_costs(args.cost, args.tokens, catalog)
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    result = simulate(
        catalog,
        args.plan,
        args.rate,
        args.duration,
        cost,
        seed=args.seed,
        backend=args.backend,
        start=args.start,
        account=args.account,
        model=args.model,
        progress=ProgressBar(sys.stderr) if show else None,
    )
    if args.plot:
        plot.write_chart(result, args.plot)
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        print(table(result))
        if args.plot:
            print(f"plot: {args.plot}")
    return EXIT_OK


def parse_costs(items: list[str], tokens: int, catalog: Catalog) -> dict[str, int]:
    """The cost of one simulated request: ``requests`` 1 (when the catalog counts requests),
    ``tokens`` when given, then each ``--cost METER=N``."""
    cost: dict[str, int] = {}
    if "requests" in catalog.meter_names:
        cost["requests"] = 1
    if tokens:
        cost["tokens"] = tokens
    for item in items:
        meter, sep, amount = item.partition("=")
        if not sep or not amount.strip().isdigit():
            raise ConfigError(
                f"--cost {item!r}: write it like credits=1500 (a meter and an amount)"
            )
        cost[meter.strip()] = int(amount)
    if not cost:
        raise ConfigError("a simulated request costs nothing: give --tokens or --cost METER=N")
    catalog.canonical(cost)  # CostError naming an unknown meter
    return cost


def table(result: Result) -> str:
    """The summary line and one row per limit."""
    hours = result.duration_ms / 3_600_000
    span = f"{hours:g} h" if hours >= 1 else f"{result.duration_ms / 1000:g} s"
    lines = [
        f"simulated {span} of Poisson traffic at {result.rate} (seed {result.seed}) on"
        f" {result.catalog}/{result.plan}, cost {result.cost}:",
        f"{result.requests:,} requests, {result.admitted:,} admitted, {result.denied:,} denied",
        "",
    ]
    rows: list[Row] = [
        [
            s.name,
            s.meter,
            s.algorithm,
            s.limit,
            s.admitted,
            s.denied,
            s.over,
            "-" if s.min_remaining is None else s.min_remaining,
            "-" if s.remaining is None else s.remaining,
        ]
        for s in result.limits.values()
    ]
    rows += [
        [name, "-", "entitlement", "-", 0, n, n, "-", "-"]
        for name, n in result.denied_other.items()
    ]
    headers = [
        "limit",
        "meter",
        "algorithm",
        "limit",
        "admitted",
        "denied",
        "over",
        "min left",
        "left at end",
    ]
    lines.append(render(headers, rows, align="lllrrrrrr", width=terminal_width()))
    lines += [
        "",
        "admitted: admitted requests it charged; denied: requests it denied (the binding limit);"
        " over: requests it alone would have refused.",
    ]
    return "\n".join(lines)
