"""The arguments of the ``quota`` command: one function per command, and the argument types.

Every option, default and help text of the command line is here, so ``quota --help`` and the
commands' own modules never disagree; the commands receive the parsed ``argparse.Namespace``.
"""

from __future__ import annotations

import argparse
import datetime as dt

from .. import __version__
from ..keys import ENV_SECRET
from .exits import EXIT_CODES
from .simulation import START

Subparsers = argparse._SubParsersAction  # the type argparse gives `add_subparsers`


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``quota`` command."""
    parser = argparse.ArgumentParser(
        prog="quota",
        description="Exact rate limits and usage quotas: inspect and try plans, operate accounts.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"quota {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_catalog_commands(sub)
    add_serve(sub)
    add_usage(sub)
    add_reset(sub)
    add_top_up(sub)
    add_simulate(sub)
    return parser


def add_catalog_commands(sub: Subparsers[argparse.ArgumentParser]) -> None:
    """``demo``, ``plans`` and ``check``: try and read catalogs, no store of one's own."""
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
    check.add_argument(
        "--keys",
        metavar="KEYS_FILE",
        help="also validate a keys file (as quota serve --keys reads it) against each plan file:"
        " plans and per-account overrides (custom deals)",
    )


def add_serve(sub: Subparsers[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser(
        "serve",
        help="run a demo gateway: the middleware around a stand-in LLM upstream (needs uvicorn)",
        description="Run a demo gateway: the middleware around a stand-in LLM upstream (needs"
        " uvicorn). The hashing secret of stored state comes from $QUOTA_SECRET, else a random"
        " one for the run.",
    )
    add_store_arguments(serve)
    serve.add_argument(
        "--keys",
        metavar="FILE",
        help="TOML/JSON table of API key -> {account, plan, cycle_start}; default: demo keys",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=port, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--metrics",
        action="store_true",
        help="serve Prometheus metrics at /metrics (needs prometheus-client: quota[metrics])",
    )
    serve.add_argument(
        "--admin-token",
        metavar="TOKEN",
        help="serve the admin API and dashboard at /admin/, behind this bearer token (16+"
        " chars; default $QUOTA_ADMIN_TOKEN; prefer it: a command line is readable by others)",
    )


def _operator_command(
    sub: Subparsers[argparse.ArgumentParser], name: str, text: str, description: str
) -> argparse.ArgumentParser:
    """An operator's command: its help ends with the exit statuses a script tests."""
    return sub.add_parser(
        name,
        help=text,
        description=description,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_usage(sub: Subparsers[argparse.ArgumentParser]) -> None:
    usage = _operator_command(
        sub,
        "usage",
        "an account's limits (what is left, when it resets) and its usage history",
        "Show what an account has left on every limit of its plan, and its daily usage."
        " Exits 1 when a limit has nothing left.",
    )
    add_account_arguments(usage, plan_required=True)
    usage.add_argument(
        "--days", type=positive_int, default=30, help="days of usage history (default 30)"
    )


def add_reset(sub: Subparsers[argparse.ArgumentParser]) -> None:
    reset = _operator_command(
        sub,
        "reset",
        "forget an account's usage (balances kept unless --include-balance)",
        "Forget the usage of an account on every limit of the catalog. Prepaid balances are"
        " kept unless --include-balance.",
    )
    add_account_arguments(reset, plan_required=False)
    reset.add_argument(
        "--include-balance", action="store_true", help="also zero prepaid balances (credits)"
    )
    reset.add_argument(
        "--include-groups",
        action="store_true",
        help="also forget what the --group groups share (for every member of them)",
    )


def add_top_up(sub: Subparsers[argparse.ArgumentParser]) -> None:
    top_up = _operator_command(
        sub,
        "top-up",
        "add to an account's prepaid balance",
        "Add AMOUNT to the account's balance on METER (credits are micro-dollars:"
        " 10000000 = $10) and print the new balance.",
    )
    add_account_arguments(top_up, plan_required=True)
    top_up.add_argument("meter", metavar="METER", help="a balance meter, e.g. credits")
    top_up.add_argument("amount", type=positive_int, metavar="AMOUNT", help="a positive integer")


def add_simulate(sub: Subparsers[argparse.ArgumentParser]) -> None:
    sim = _operator_command(
        sub,
        "simulate",
        "virtual-time Poisson traffic through a plan: admitted/denied per limit, PNG plot",
        "Play Poisson arrivals at --rate for --duration of virtual time through a plan, with a"
        " real limiter and a simulated clock; print admitted/denied per limit; --plot writes"
        " the remaining budget of each limit over time as a PNG (needs matplotlib:"
        " quota[plot]).",
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
        default=START,
        metavar="ISO",
        help=f"virtual start time (default {START:%Y-%m-%dT%H:%M:%SZ})",
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


# -- arguments shared by several commands ----------------------------------------------------


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """``--catalog`` and ``--backend``: the plans, and the store the command acts on."""
    parser.add_argument(
        "--catalog", default="zylo", metavar="NAME_OR_FILE", help="catalog (default zylo)"
    )
    parser.add_argument(
        "--backend", default="memory://", metavar="URL", help="storage URL (default memory://)"
    )


def add_account_arguments(parser: argparse.ArgumentParser, plan_required: bool) -> None:
    """The options every account command shares."""
    parser.add_argument("account", metavar="ACCOUNT", help="the account id")
    parser.add_argument(
        "--plan",
        required=plan_required,
        metavar="PLAN",
        help="the account's plan" + ("" if plan_required else " (default: the catalog's first)"),
    )
    parser.add_argument("--key", metavar="KEY", help="an API key of the account (per-key limits)")
    parser.add_argument(
        "--group",
        type=group,
        action="append",
        default=[],
        metavar="KIND=NAME",
        help="a group the account belongs to, e.g. org=acme (repeatable; group-scoped limits)",
    )
    parser.add_argument(
        "--cycle-start",
        type=timestamp,
        metavar="ISO",
        help="billing-cycle anchor / trial start, e.g. 2026-01-31T10:00:00Z",
    )
    add_store_arguments(parser)
    parser.add_argument(
        "--secret",
        metavar="SECRET",
        help=f"the gateways' hashing secret (default: ${ENV_SECRET}, else the library's default);"
        f" prefer ${ENV_SECRET}: other users of the machine can read a command line",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")


# -- argument types: each raises ArgumentTypeError, which argparse reports as a usage error ---


def group(text: str) -> tuple[str, str]:
    """``KIND=NAME`` as a (kind, name) pair."""
    kind, sep, name = text.partition("=")
    if not sep or not kind or not name:
        raise argparse.ArgumentTypeError(f"expected KIND=NAME (e.g. org=acme), got {text!r}")
    return kind, name


def timestamp(text: str) -> dt.datetime:
    """An ISO 8601 time for ``--cycle-start``/``--start``; naive means UTC."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: expected ISO 8601 like 2026-01-31T10:00:00Z"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def positive_int(text: str) -> int:
    """An amount or a count: digits, thousands separators allowed, above zero."""
    try:
        value = int(text.replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid amount {text!r}: expected an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid amount {text!r}: must be positive")
    return value


def port(text: str) -> int:
    """A TCP port, 0 to 65535."""
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected 0 to 65535")
    return int(text)
