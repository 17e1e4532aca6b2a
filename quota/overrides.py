"""Custom deals: a principal's per-limit overrides applied to its plan.

``Principal(overrides={"rpd": "50000/day"})`` changes limits of the principal's plan for that
principal alone, without a plan of its own. A string is the limit's new ``rate``; a mapping
gives the fields of the limit to change: its capacity (``rate``, or ``limit`` with or without
``period``: ``limit`` alone keeps the period), ``burst``, ``grant``, ``precision``, ``status``,
``code``, ``message``, ``lease``, ``shadow``, ``models``, ``reserve``, ``timezone``... A limit
keeps its ``name``, ``meter``, ``algorithm``, ``scope`` and ``on_error`` (what its stored state
is and how the store's failure is handled, per limit name), so an override may not change
them: the account's state carries over, as it does on a plan change. A reserve is held back
again for the plan's priority (``Limit.held_back``).

The effective plan is built once per (catalog, plan, overrides) and kept in a bounded cache:
every account on the same deal shares it. Errors are ``CatalogError``s worded like a plan
file's ("plan 'basic', limit 'rpd', field 'rate': ..."): a deal is plan configuration that
the operator wrote, not the client's input, so a gateway answers it as its own failure (the
middleware: 503) rather than a 4xx the client could fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from .catalog import Catalog, Plan, Principal
from .errors import CatalogError
from .limit import Limit
from .rates import parse_rate

#: What an override may not change: the limit's identity in storage and its failure policy.
FIXED = ("name", "meter", "algorithm", "scope", "on_error")
#: The fields that say a windowed limit's capacity (an override names a new one whole).
CAPACITY = ("rate", "limit", "period")
#: Deals (catalog, plan, overrides) kept built; cleared whole when full.
DEALS = 4096

Overrides = Mapping[str, str | Mapping[str, Any]]
_deals: dict[tuple[int, str, Overrides], tuple[Catalog, Plan]] = {}


def plan_of(catalog: Catalog, who: Principal) -> Plan:
    """The plan ``who`` is on: its catalog plan, with its overrides applied when it has some
    (UnknownPlanError for an unknown plan, CatalogError for an override that does not fit)."""
    if not who.overrides:
        return catalog.plan(who.plan)
    key = (id(catalog), who.plan, who.overrides)
    found = _deals.get(key)
    if found is not None and found[0] is catalog:  # the same catalog, not one at its address
        return found[1]
    plan = apply(catalog.plan(who.plan), who.overrides, f"the overrides of account {who.account!r}")
    if len(_deals) >= DEALS:
        _deals.clear()
    _deals[key] = (catalog, plan)
    return plan


def apply(plan: Plan, overrides: Overrides, where: str = "the overrides") -> Plan:
    """``plan`` with ``overrides`` applied; CatalogError listing every problem, each naming
    the plan, the limit and the field (``where``: whose overrides, for the first line)."""
    limits = {lim.name: lim for lim in plan.limits}
    changed: dict[str, Limit] = {}
    problems: list[str] = []
    for name, value in overrides.items():
        lim = limits.get(name)
        if lim is None:
            known = ", ".join(limits) or "none"
            problems.append(
                f"plan {plan.name!r} has no limit {name!r} to override; its limits: {known}"
            )
            continue
        changes = {"rate": value} if isinstance(value, str) else dict(value)
        new = _override(plan, lim, changes, problems)
        if new is not None:
            changed[name] = new
    if problems:
        raise CatalogError(f"{where} are invalid:\n" + "\n".join(f"  - {x}" for x in problems))
    return plan.model_copy(update={"limits": [changed.get(n, lim) for n, lim in limits.items()]})


def _override(plan: Plan, lim: Limit, changes: dict[str, Any], problems: list[str]) -> Limit | None:
    """``lim`` with ``changes``, held back for ``plan``'s priority; None after adding what is
    wrong to ``problems``."""
    where = f"plan {plan.name!r}, limit {lim.name!r}"
    fixed = [f for f in FIXED if f in changes]
    for field in fixed:
        problems.append(
            f"{where}, field {field!r}: an override cannot change a limit's {field} (a limit"
            " keeps its name, meter, algorithm, scope and on_error: its state carries over)"
        )
    if fixed:
        return None
    try:
        new = Limit.model_validate(_merged(lim, changes))
    except ValidationError as exc:
        problems.extend(_word(err, where, changes) for err in exc.errors())
        return None
    return new.held_back(plan.priority)


def _merged(lim: Limit, changes: dict[str, Any]) -> dict[str, Any]:
    """The limit's fields as a plan file would give them, with ``changes`` on top. A new
    capacity replaces the old whole; ``limit`` alone keeps the old period."""
    base = lim.model_dump()  # the declared fields: a reserve's held-back amount is derived
    named = {k for k in CAPACITY if k in changes}
    if not named:
        return {**base, **changes}
    period = base["period"] if base.get("period") is not None else _period_of(base.get("rate"))
    for k in CAPACITY:
        base.pop(k, None)
    if named == {"limit"} and lim.algorithm not in ("concurrency", "balance"):
        base["period"] = period
    return {**base, **changes}


def _period_of(rate: object) -> str | None:
    """The period of a rate string as ``period`` would say it: "7200/day" -> "day"."""
    if not isinstance(rate, str):
        return None
    parsed = parse_rate(rate)
    return parsed.unit if parsed.multiples == 1 else f"{parsed.multiples} {parsed.unit}s"


def _word(err: Any, where: str, changes: dict[str, Any]) -> str:
    """One pydantic error as a plan file's error reads: "<where>, field 'rate': message". An
    error of the whole limit names the field when the override changes only one."""
    loc = [str(k) for k in err["loc"]]
    field = ".".join(loc) if loc else (next(iter(changes)) if len(changes) == 1 else "")
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field (check its spelling)"
    return f"{where}, field {field!r}: {msg}" if field else f"{where}: {msg}"
