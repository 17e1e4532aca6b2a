"""``quota plans`` and ``quota check``: a catalog as text, and plan files validated.

``show_plans`` prints what a newcomer asks of a catalog: each plan's price, models, features and
its limits on every meter in a few words ("10/min sliding", "$10.00 grant"), then the shared
budgets (meter aliases) and the model tiers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..catalog import Catalog, Plan
from ..errors import QuotaError
from ..limit import Limit
from ..overrides import plan_of
from .exits import EXIT_LIMITED, EXIT_OK
from .tables import Row, dollars, render, terminal_width

_PERIODS = ((86_400_000, "day"), (3_600_000, "h"), (60_000, "min"), (1000, "s"), (1, "ms"))
_KIND = {"sliding_window": "sliding", "fixed_window": "fixed", "token_bucket": "bucket"}


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
        text = f"{limit.amount + limit.held:,}/{per(limit.period_ms)} {_KIND[algo]}"
        if limit.burst is not None:
            text += f" (burst {limit.burst:,})"
    if limit.scope != "account":
        text += " (global)" if limit.scope == "global" else f" per {limit.scope}"
    return ("shadow " if limit.shadow else "") + text + _deal_terms(limit)


def _deal_terms(limit: Limit) -> str:
    """What a limit adds for deals: the models it is for, the share it holds back for
    higher priorities (and what this plan may use of it when held back from it)."""
    text = f" for {', '.join(limit.models)}" if limit.models is not None else ""
    if limit.reserve is not None:
        held = f"({limit.reserve.share:.0%} kept for priority {limit.reserve.priority}+)"
        text += f", {limit.amount:,} open {held}" if limit.held else f" {held}"
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
    out += _priorities(catalog)
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


def _priorities(catalog: Catalog) -> list[str]:
    """The plans' priorities for shared capacity, when a plan has one or a limit a reserve."""
    ranked = [p for p in catalog.plans.values() if p.priority]
    reserves = any(lim.reserve for p in catalog.plans.values() for lim in p.limits)
    if not ranked and not reserves:
        return []
    listed = ", ".join(f"{p.name} {p.priority}" for p in ranked) or "none"
    return [
        "",
        f"Priority for shared capacity (others 0): {listed}.",
        "  A limit's reserve holds a share of it for plans of at least its priority.",
    ]


def deal_summary(catalog: Catalog) -> str:
    """What a catalog uses of deals, for ``quota check``: "; 4 per-model, 4 with a reserve;
    priorities: mega 10; groups: org" ("" when nothing)."""
    limits = [lim for plan in catalog.plans.values() for lim in plan.limits]
    parts = []
    if modeled := sum(lim.models is not None for lim in limits):
        parts.append(f"{modeled} per-model")
    if reserved := sum(lim.reserve is not None for lim in limits):
        parts.append(f"{reserved} with a reserve")
    ranked = [f"{p.name} {p.priority}" for p in catalog.plans.values() if p.priority]
    if ranked:
        parts.append(f"priorities: {', '.join(ranked)}")
    if catalog.groups:
        parts.append(f"groups: {', '.join(catalog.groups)}")
    return "".join(f"; {part}" for part in parts)


def _per_million(price: int) -> str:
    return f"{dollars(price)}/1M tok" if price else "-"


def cmd_plans(args: argparse.Namespace) -> int:
    """Print the catalog's plans, fitted to the terminal's width."""
    print(show_plans(Catalog.load(args.catalog), terminal_width()))
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """Load every file; one line each. Exits 1 when any is invalid (after checking them all)."""
    status = EXIT_OK
    for path in args.files:
        try:
            catalog = Catalog.load(path)
        except QuotaError as exc:
            print(f"quota: error: {exc}", file=sys.stderr)
            status = EXIT_LIMITED
            continue
        nlimits = sum(len(plan.limits) for plan in catalog.plans.values())
        print(f"ok: {path} ({len(catalog.plans)} plans, {nlimits} limits{deal_summary(catalog)})")
        if args.keys:
            status = max(status, check_keys(args.keys, catalog))
    return status


def check_keys(path: str, catalog: Catalog) -> int:
    """Validate a keys file (``quota serve --keys``) against ``catalog``: every account's plan
    and overrides; prints each deal (the limits its overrides change) or the error."""
    from .serve import load_keys  # only here: serve imports what only it needs

    try:
        keys = load_keys(path, catalog)
    except QuotaError as exc:
        print(f"quota: error: {exc}", file=sys.stderr)
        return EXIT_LIMITED
    deals = [who for who in keys.values() if who.overrides]
    print(f"ok: {path} ({len(keys)} keys, {len(deals)} with overrides)")
    for who in deals:
        plan = plan_of(catalog, who)
        changed = ", ".join(
            f"{lim.name} {describe(lim)}" for lim in plan.limits if lim.name in who.overrides
        )
        print(f"  account {who.account!r} on {who.plan}: {changed}")
    return EXIT_OK
