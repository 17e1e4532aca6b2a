"""``quota usage``, ``quota reset`` and ``quota top-up``: an operator's view of one account.

Each builds a ``Limiter`` on ``--backend`` (a shared store such as ``redis://`` in production),
does one thing, and prints text or, with ``--json``, one JSON document on stdout.

The store names an account's state by a keyed hash of its id (``quota.keys``), so the commands
must hash with the secret the gateways use: ``--secret``, else ``$QUOTA_SECRET``, else the
library's default (what a ``Limiter`` built without ``secret=`` uses). With another secret they
would read and reset names nobody writes: an exhausted account would show as unused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence

from ..backends.urls import redact
from ..catalog import Catalog, Principal
from ..keys import ENV_SECRET, checked_secret, secret_from_env
from ..limit import Limit
from ..limiter import Limiter
from ..planner import no_cycle_start
from ..states import LimitState
from .exits import EXIT_LIMITED, EXIT_OK
from .tables import Row, dollars, render, terminal_width

MEMORY_NOTE = (
    "quota: note: memory:// keeps state only inside this process: it starts empty and is gone"
    " when the command exits. Pass --backend redis://HOST:PORT/DB to act on a gateway's store."
)


def principal(args: argparse.Namespace, catalog: Catalog) -> Principal:
    plan = args.plan or next(iter(catalog.plans))
    catalog.plan(plan)  # UnknownPlanError naming the known plans
    return Principal(
        account=args.account,
        plan=plan,
        key=args.key,
        cycle_start=args.cycle_start,
        groups=dict(args.group),
    )


def missing_cycle_start(who: Principal, catalog: Catalog) -> Limit | None:
    """The first limit of the principal's plan that counts from a cycle_start (a trial, a
    billing-cycle month) when the principal has none; None when nothing is missing."""
    if who.cycle_start is not None:
        return None
    return next((lim for lim in catalog.plan(who.plan).limits if lim.needs_cycle_start), None)


def require_cycle_start(who: Principal, catalog: Catalog) -> None:
    """``quota usage`` reads every limit of the plan: one that counts from the account's
    cycle_start needs ``--cycle-start``. A PrincipalError (exit 2) that says so, rather than
    the library's hint about ``Principal(...)``."""
    lim = missing_cycle_start(who, catalog)
    if lim is not None:
        hint = "give --cycle-start, e.g. --cycle-start 2026-01-31T10:00:00Z"
        raise no_cycle_start(catalog.plan(who.plan), lim, hint)


def store_secret(args: argparse.Namespace) -> bytes | None:
    """The hashing secret the gateways wrote the store with: ``--secret``, else
    ``$QUOTA_SECRET``, else None (the library's default secret, as before either existed).
    A secret given but shorter than 16 bytes is a ConfigError (exit 2), never a silent
    fallback to the default: that would act on names no gateway uses."""
    if args.secret is not None:
        return checked_secret(args.secret, "--secret")
    if ENV_SECRET in os.environ:
        return secret_from_env()
    return None


def open_limiter(args: argparse.Namespace) -> tuple[Catalog, Limiter]:
    catalog = Catalog.load(args.catalog)
    secret = store_secret(args)
    if args.backend.startswith("memory:"):
        print(MEMORY_NOTE, file=sys.stderr)
    return catalog, Limiter(catalog, args.backend, secret=secret)


STATE_FIELDS = ("name", "meter", "algorithm", "scope", "limit", "remaining", "reset_after",
                "retry_after", "window")  # fmt: skip


def state_dict(state: LimitState) -> dict[str, object]:
    """A limit's state as JSON-ready fields."""
    return {name: getattr(state, name) for name in STATE_FIELDS}


def amount_text(meter: str, amount: int) -> str:
    return dollars(amount) if meter == "credits" else f"{amount:,}"


def limited(states: Sequence[LimitState]) -> list[str]:
    """The limits with nothing left (the next request on their meter is denied)."""
    return [s.name for s in states if s.remaining <= 0]


def _reset_text(state: LimitState) -> str:
    if state.algorithm == "balance":
        return "never"
    return "-" if state.reset_after <= 0 else f"{state.reset_after:,.3f}".rstrip("0").rstrip(".")


def states_table(states: Sequence[LimitState]) -> str:
    rows: list[Row] = []
    for s in states:
        used = "-" if s.algorithm == "balance" else f"{max(s.limit - s.remaining, 0):,}"
        rows.append(
            [
                s.name,
                s.meter,
                s.algorithm,
                s.scope,
                used,
                "-" if s.algorithm == "balance" else f"{s.limit:,}",
                amount_text(s.meter, s.remaining),
                _reset_text(s),
            ]
        )
    headers = ["limit", "meter", "algorithm", "scope", "used", "limit", "remaining", "reset (s)"]
    return render(headers, rows, align="llllrrrr", width=terminal_width())


def history_table(history: Mapping[str, Mapping[str, int]]) -> str | None:
    """Days with usage (idle days left out) and a total row, for the meters used; None when
    nothing was used in the period."""
    days = [(day, totals) for day, totals in history.items() if any(totals.values())]
    if not days:
        return None
    meters = [m for m in next(iter(history.values())) if any(t.get(m) for _, t in days)]
    rows: list[Row] = [[day, *(totals.get(m, 0) for m in meters)] for day, totals in days]
    rows.append(["total", *(sum(t.get(m, 0) for _, t in days) for m in meters)])
    return render(["day", *meters], rows, align="l" + "r" * len(meters), width=terminal_width())


def cmd_usage(args: argparse.Namespace) -> int:
    """Exit 0, or 1 when a limit of the account has nothing left."""
    catalog, limiter = open_limiter(args)
    with limiter:
        who = principal(args, catalog)
        require_cycle_start(who, catalog)
        states = limiter.peek(who)
        kept = catalog.usage.history_days  # 0: the catalog keeps no history
        history = limiter.usage(who, days=min(args.days, kept)) if kept else None
    exhausted = limited(states)
    if args.json:
        doc = {
            "account": who.account,
            "plan": who.plan,
            "catalog": catalog.name,
            "backend": redact(args.backend),
            "limits": [state_dict(s) for s in states],
            "limited_by": exhausted,
            "history": history,
        }
        print(json.dumps(doc, indent=2))
        return EXIT_LIMITED if exhausted else EXIT_OK
    print(f"account {who.account!r} on plan {who.plan!r} (catalog {catalog.name!r})")
    print(states_table(states) if states else "no limits on this plan")
    if history is None:
        print(f"\nusage history: not kept (catalog {catalog.name!r} sets no [usage] history_days)")
    else:
        text = history_table(history)
        print(f"\nusage, last {args.days} days (idle days not shown):")
        print(text or "  none recorded")
    if exhausted:
        print(f"\nlimited: {', '.join(exhausted)} (nothing left)")
    return EXIT_LIMITED if exhausted else EXIT_OK


def cmd_reset(args: argparse.Namespace) -> int:
    catalog, limiter = open_limiter(args)
    with limiter:
        who = principal(args, catalog)
        limiter.reset(who, include_balance=args.include_balance, include_groups=args.include_groups)
        # The limits after the reset, for --json; null when the plan counts from a
        # cycle_start not given (the reset needs none: it forgets every window).
        states = None
        if args.json and missing_cycle_start(who, catalog) is None:
            states = limiter.peek(who)
    if args.json:
        doc = {
            "account": who.account,
            "reset": True,
            "include_balance": args.include_balance,
            "include_groups": args.include_groups,
            "limits": None if states is None else [state_dict(s) for s in states],
        }
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    kept = "" if args.include_balance else "; prepaid balances kept (--include-balance zeroes them)"
    print(f"account {who.account!r}: usage reset{kept}")
    return EXIT_OK


def cmd_top_up(args: argparse.Namespace) -> int:
    catalog, limiter = open_limiter(args)
    with limiter:
        who = principal(args, catalog)
        balance = limiter.top_up(who, args.meter, args.amount)
    meter = catalog.meter_of(args.meter)
    if args.json:
        doc = {"account": who.account, "meter": meter, "added": args.amount, "balance": balance}
        print(json.dumps(doc))
        return EXIT_OK
    print(
        f"account {who.account!r}: {meter} +{amount_text(meter, args.amount)},"
        f" balance {amount_text(meter, balance)}"
    )
    return EXIT_OK
