"""The operator's commands of ``quota``: ``usage``, ``reset``, ``top-up`` (see
``quota.operate``) and ``simulate`` (see ``quota.simulate``): their arguments, the simulation's
cost, table and plot."""

from __future__ import annotations

import argparse
import json
import sys

from .catalog import Catalog
from .errors import ConfigError
from .operate import add_account_arguments, add_store_arguments, positive_int, timestamp
from .operate import cmd_reset as cmd_reset
from .operate import cmd_top_up as cmd_top_up
from .operate import cmd_usage as cmd_usage
from .simulate import ProgressBar, Result, simulate

EXIT_OK = 0


def add_operator_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``usage``, ``reset``, ``top-up`` and ``simulate`` to the ``quota`` subparsers."""
    from .cli import EXIT_CODES

    def command(name: str, text: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=text,
            description=description,
            epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    usage = command(
        "usage",
        "an account's limits (what is left, when it resets) and its usage history",
        "Show what an account has left on every limit of its plan, and its daily usage."
        " Exits 1 when a limit has nothing left.",
    )
    add_account_arguments(usage, plan_required=True)
    usage.add_argument(
        "--days", type=positive_int, default=30, help="days of usage history (default 30)"
    )
    reset = command(
        "reset",
        "forget an account's usage (balances kept unless --include-balance)",
        "Forget the usage of an account on every limit of the catalog. Prepaid balances are"
        " kept unless --include-balance.",
    )
    add_account_arguments(reset, plan_required=False)
    reset.add_argument(
        "--include-balance", action="store_true", help="also zero prepaid balances (credits)"
    )
    top_up = command(
        "top-up",
        "add to an account's prepaid balance",
        "Add AMOUNT to the account's balance on METER (credits are micro-dollars:"
        " 10000000 = $10) and print the new balance.",
    )
    add_account_arguments(top_up, plan_required=True)
    top_up.add_argument("meter", metavar="METER", help="a balance meter, e.g. credits")
    top_up.add_argument("amount", type=positive_int, metavar="AMOUNT", help="a positive integer")
    sim = command(
        "simulate",
        "virtual-time Poisson traffic through a plan: admitted/denied per limit, PNG plot",
        "Play Poisson arrivals at --rate for --duration of virtual time through a plan, with a"
        " real limiter and a simulated clock; print admitted/denied per limit; --plot writes"
        " the remaining budget of each limit over time as a PNG.",
    )
    add_store_arguments(sim)
    sim.add_argument("--plan", required=True, metavar="PLAN", help="the plan to simulate")
    sim.add_argument(
        "--rate", default="20/minute", help="mean arrival rate, e.g. 20/minute (default)"
    )
    sim.add_argument(
        "--duration", default="1h", help="virtual time, e.g. 90s, 1h, 2 days (default 1h)"
    )
    sim.add_argument(
        "--tokens", type=int, default=0, metavar="N", help="tokens per request (default 0)"
    )
    sim.add_argument(
        "--cost",
        action="append",
        default=[],
        metavar="METER=N",
        help="more cost per request, e.g. --cost credits=1500 (repeatable)",
    )
    sim.add_argument("--model", help="model of every request (entitlement check)")
    sim.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    sim.add_argument(
        "--start",
        type=timestamp,
        default=None,
        metavar="ISO",
        help="virtual start time (default 2026-01-01T00:00:00Z)",
    )
    sim.add_argument("--account", default="simulated", help="account id (default simulated)")
    sim.add_argument("--plot", metavar="FILE.png", help="write a PNG plot of remaining budgets")
    sim.add_argument("--json", action="store_true", help="print the result as JSON")
    sim.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )


def cmd_simulate(args: argparse.Namespace) -> int:
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
        plot(result, args.plot)
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        print(table(result))
        if args.plot:
            print(f"plot: {args.plot}")
    return EXIT_OK


# -- the command -----------------------------------------------------------------------------


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
    from .tables import Row, render, terminal_width

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


def plot(result: Result, path: str) -> None:
    """Write the remaining budget of every limit over time as a PNG file."""
    from .plot import line_chart, png

    duration_s = result.duration_ms / 1000
    series = {
        name: stats.points(duration_s) for name, stats in result.limits.items() if stats.buckets
    }
    title = f"{result.catalog}/{result.plan}: remaining budget, {result.rate}, seed {result.seed}"
    canvas = line_chart(series, duration_s, title)
    meta = {
        "Title": title,
        "Software": "quota simulate",
        "Description": "y: remaining / limit per limit; x: virtual time; lines: "
        + ", ".join(series),
    }
    try:
        with open(path, "wb") as fh:
            fh.write(png(canvas, meta))
    except OSError as exc:
        raise ConfigError(f"--plot {path!r}: {exc.strerror or exc}") from None
