"""The ``quota`` command: ``demo``, ``plans``, ``check``, ``serve``, and the operator's
``usage``, ``reset``, ``top-up`` and ``simulate``.

Standard library only (argparse), so the core install runs it (``serve`` needs the ``server``
extra: uvicorn; ``serve --metrics`` the ``metrics`` extra). Errors print as
``quota: error: <message>``; the exit codes are in ``EXIT_CODES``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .catalog import Catalog, Plan
from .errors import BackendError, CatalogError, ConfigError, CostError, QuotaError, UnknownPlanError
from .limit import Limit
from .tables import Row, dollars, render, terminal_width

#: Exit statuses a script can rely on.
EXIT_OK, EXIT_LIMITED, EXIT_USAGE, EXIT_BACKEND = 0, 1, 2, 3
EXIT_CODES = """exit status:
  0  success
  1  the answer is no: `usage` found the account at a limit (nothing left on it),
     `check` found an invalid plan file
  2  usage error or bad input: unknown option, plan, meter or catalog, bad amount, bad URL
  3  the storage backend failed or is unreachable"""

_PERIODS = ((86_400_000, "day"), (3_600_000, "h"), (60_000, "min"), (1000, "s"), (1, "ms"))
_KIND = {"sliding_window": "sliding", "fixed_window": "fixed", "token_bucket": "bucket"}


# -- plans -----------------------------------------------------------------------------------


def per(period_ms: int) -> str:
    """A period as the tail of a rate: 60000 -> "min", 172800000 -> "2 days"."""
    for size, name in _PERIODS:
        if period_ms % size == 0:
            n = period_ms // size
            if n == 1:
                return name
            return f"{n} {name}s" if name == "day" else f"{n} {name}"
    return f"{period_ms} ms"  # pragma: no cover - every integer is a multiple of 1 ms


def describe(limit: Limit) -> str:
    """One limit in a few words: "10/min sliding", "7,200/day", "$10.00 grant"."""
    algo = limit.algorithm
    if algo == "balance":
        grant = dollars(limit.grant) if limit.meter == "credits" else f"{limit.grant:,}"
        text = f"{grant} grant"
    elif algo == "concurrency":
        text = f"{limit.amount:,} in flight"
    elif algo == "allowance":
        text = f"{limit.amount:,} once, over {per(limit.period_ms)}"
    elif algo == "calendar":
        unit = limit.unit if limit.months <= 1 else f"{limit.months} {limit.unit}s"
        text = f"{limit.amount:,}/{unit}" + (" from cycle start" if limit.anchor == "cycle" else "")
    else:
        text = f"{limit.amount:,}/{per(limit.period_ms)} {_KIND[algo]}"
        if limit.burst is not None:
            text += f" (burst {limit.burst:,})"
    if limit.scope != "account":
        text += f" per {limit.scope}" if limit.scope == "key" else " (global)"
    return text


def meter_columns(catalog: Catalog) -> list[str]:
    """Meters that some plan limits: declared names first, in their order, then the rest."""
    limited = {lim.meter for plan in catalog.plans.values() for lim in plan.limits}
    ordered = [m for m in catalog.meters.names if m in limited]
    return ordered + sorted(limited - set(ordered))


def meter_cell(catalog: Catalog, plan: Plan, meter: str) -> str:
    """The plan's limits on ``meter``, or why there are none."""
    limits = plan.limits_on(meter)
    if limits:
        return ", ".join(describe(lim) for lim in limits)
    features = {f for p in catalog.plans.values() for f in p.features}
    if meter in features and not catalog.allows_feature(plan, meter):
        return "not on plan"
    others = [lim for p in catalog.plans.values() for lim in p.limits_on(meter)]
    if others and all(lim.algorithm == "balance" for lim in others):
        return "none"
    return "unlimited"


def _listing(items: Sequence[str], empty: str) -> str:
    return "all" if "*" in items else (", ".join(items) or empty)


def show_plans(catalog: Catalog, width: int | None) -> str:
    """The catalog as text: the plans table, shared budgets and model tiers."""
    meters = meter_columns(catalog)
    headers = ["plan", "price", "models", "features", *meters]
    rows: list[Row] = [
        [
            plan.name,
            plan.price or "-",
            _listing(plan.models, "none"),
            _listing(plan.features, "none"),
            *(meter_cell(catalog, plan, m) for m in meters),
        ]
        for plan in catalog.plans.values()
    ]
    title = f"catalog {catalog.name!r}" + (
        f": {catalog.description}" if catalog.description else ""
    )
    out = [title, f"time zone {catalog.timezone}; limits count per account unless marked", ""]
    out.append(render(headers, rows, align="l" * len(headers), width=width))
    success_only = [p.name for p in catalog.plans.values() if p.success_only]
    if success_only:
        out += ["", f"Only successful calls count on: {', '.join(success_only)}."]
    out += ["", "Shared budgets (aliases):"]
    groups: dict[str, list[str]] = {}
    for alias, target in catalog.meters.aliases.items():
        groups.setdefault(target, []).append(alias)
    out += [f"  {' + '.join(names)} -> one {target!r} budget" for target, names in groups.items()]
    if not groups:
        out.append("  none")
    out += ["", f"Model tiers (any model not listed: {catalog.default_tier!r}):"]
    if catalog.models:
        tiers = [
            [model, info.tier, _per_million(info.input_price), _per_million(info.output_price)]
            for model, info in catalog.models.items()
        ]
        table = render(["model", "tier", "input", "output"], tiers, align="llrr", width=width)
        out.append("\n".join("  " + line for line in table.splitlines()))
    else:
        out.append("  none listed")
    return "\n".join(out)


def _per_million(price: int) -> str:
    return f"{dollars(price)}/1M tok" if price else "-"


# -- commands --------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run

    print(run(args.backend))
    return 0


def cmd_plans(args: argparse.Namespace) -> int:
    print(show_plans(Catalog.load(args.catalog), terminal_width()))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    status = 0
    for path in args.files:
        try:
            catalog = Catalog.load(path)
        except QuotaError as exc:
            print(f"quota: error: {exc}", file=sys.stderr)
            status = 1
            continue
        nlimits = sum(len(plan.limits) for plan in catalog.plans.values())
        print(f"ok: {path} ({len(catalog.plans)} plans, {nlimits} limits)")
    return status


def cmd_serve(args: argparse.Namespace) -> int:
    from .asgi.serve import run

    return run(args.catalog, args.backend, args.keys, args.host, args.port, args.metrics)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": cmd_demo,
    "plans": cmd_plans,
    "check": cmd_check,
    "serve": cmd_serve,
    "usage": lambda args: _operator("cmd_usage", args),
    "reset": lambda args: _operator("cmd_reset", args),
    "top-up": lambda args: _operator("cmd_top_up", args),
    "simulate": lambda args: _operator("cmd_simulate", args),
}


def _operator(name: str, args: argparse.Namespace) -> int:
    """The operator commands live in ``quota.commands`` (imported when used)."""
    from . import commands

    status: int = getattr(commands, name)(args)
    return status


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``quota`` command."""
    from .commands import add_operator_commands

    parser = argparse.ArgumentParser(
        prog="quota",
        description="Exact rate limits and usage quotas: inspect and try plans, operate accounts.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"quota {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="play a scripted scenario of the built-in Zylo catalog")
    demo.add_argument(
        "--backend", default="memory://", metavar="URL", help="storage URL (default memory://)"
    )
    plans = sub.add_parser("plans", help="show a catalog's plans, limits, budgets and tiers")
    plans.add_argument(
        "catalog",
        nargs="?",
        default="zylo",
        metavar="NAME_OR_FILE",
        help="a built-in catalog (zylo, zyla) or a .toml/.yaml/.json plan file (default zylo)",
    )
    check = sub.add_parser("check", help="validate plan files")
    check.add_argument("files", nargs="+", metavar="FILE", help="plan files to validate")
    serve = sub.add_parser(
        "serve",
        help="run a demo gateway: the middleware around a stand-in LLM upstream (needs uvicorn)",
        description="Run a demo gateway: the middleware around a stand-in LLM upstream (needs"
        " uvicorn). The hashing secret of stored state comes from $QUOTA_SECRET, else a random"
        " one for the run.",
    )
    serve.add_argument(
        "--catalog", default="zylo", metavar="NAME_OR_FILE", help="catalog (default zylo)"
    )
    serve.add_argument(
        "--backend", default="memory://", metavar="URL", help="storage URL (default memory://)"
    )
    serve.add_argument(
        "--keys",
        metavar="FILE",
        help="TOML/JSON table of API key -> {account, plan, cycle_start}; default: demo keys",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--metrics",
        action="store_true",
        help="serve Prometheus metrics at /metrics (needs prometheus-client: quota[metrics])",
    )

    add_operator_commands(sub)
    return parser


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected 0 to 65535")
    return int(text)


def exit_status(exc: QuotaError) -> int:
    """3 for a failing store, 2 for bad input, 1 for anything else quota refuses."""
    if isinstance(exc, BackendError):
        return EXIT_BACKEND
    if isinstance(exc, CatalogError | ConfigError | CostError | UnknownPlanError):
        return EXIT_USAGE
    return EXIT_LIMITED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``quota`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if getattr(args, "start", "absent") is None:
        from .simulate import START

        args.start = START
    try:
        status = COMMANDS[args.command](args)
        sys.stdout.flush()
    except QuotaError as exc:
        print(f"quota: error: {exc}", file=sys.stderr)
        return exit_status(exc)
    except BrokenPipeError:  # e.g. `quota plans | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return status
