"""From a principal and a cost to engine operations.

Everything an engine call needs that is not stored state lives here: plan lookup (a deal's
overrides: ``quota.overrides``), cost validation, entitlements and the rules a request meets
(``quota.selection``), calendar windows, storage names; planned once per principal, cost
names and window (``quota.templates``), then reused. What the engine answers becomes a
Decision in ``quota.verdict``. Limiter and AsyncLimiter share both and differ only in how they
call their engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from .alerts import attach
from .algorithms import Params
from .backends.base import Op
from .catalog import Catalog, Plan, Principal
from .errors import ConfigError, CostError, PrincipalError
from .history import HISTORY, DayWindows, UsageQuery, history_limits
from .keys import DEFAULT_SECRET, GLOBAL_SLOT, account_slot, field_name, group_slot
from .limit import Limit, parse_offset_ms
from .overrides import plan_of
from .rules import Rule as Rule
from .rules import rule_of
from .selection import Forbidden as Forbidden
from .selection import Selection
from .templates import Prepared as Prepared
from .templates import Template, positions
from .windows import WindowCache, to_ms

#: Bound on each per-planner cache; cleared whole when full (costs one recomputation each).
_CACHE_SIZE = 65_536
#: Bound on the templates (a few KB each: a Zylo basic template with usage history and one
#: remembered cost vector is about 5 KB).
TEMPLATES = 16_384

V = TypeVar("V")


def _bounded(cache: dict[Any, Any], value: V, size: int | None = None) -> V:
    """``value``, after making room in ``cache`` for it (the caller stores it)."""
    if len(cache) >= (_CACHE_SIZE if size is None else size):
        cache.clear()
    return value


def no_cycle_start(
    plan: Plan, limit: Limit, hint: str = "give Principal(cycle_start=...)"
) -> PrincipalError:
    """The error for a principal without the ``cycle_start`` that ``limit`` of ``plan`` counts
    from, naming the field, the plan and the limit (``hint``: how the caller gives one)."""
    what = "a one-time allowance" if limit.algorithm == "allowance" else "a billing-cycle month"
    return PrincipalError(
        f"plan {plan.name!r}, limit {limit.name!r}: {what} starts at the principal's"
        f" cycle_start, and this principal has none: {hint}",
        field="cycle_start",
        plan=plan.name,
        limit=limit.name,
    )


def no_group(plan: Plan, limit: Limit) -> PrincipalError:
    """The error for a principal outside the group ``limit`` of ``plan`` counts per (its
    scope: ``org``, ``team``...), naming the group kind, the plan and the limit."""
    kind = limit.scope
    return PrincipalError(
        f"plan {plan.name!r}, limit {limit.name!r}: counts per {kind!r} group, and this"
        f" principal belongs to no {kind!r}: give Principal(groups={{{kind!r}: ...}})",
        field=f"groups.{kind}",
        plan=plan.name,
        limit=limit.name,
    )


class Planner:
    """Catalog-side logic of the limiter (no I/O)."""

    def __init__(self, catalog: Catalog, secret: bytes = DEFAULT_SECRET) -> None:
        self.catalog = catalog
        self.secret = secret
        self.windows = WindowCache()
        # Usage history ([usage] history_days): one never-denying limit per meter, in every plan.
        self.history = history_limits(catalog)
        self.days = DayWindows(catalog.usage.history_days)
        # Which rules a request meets, and its entitlements (``quota.selection``).
        self.selection = Selection(catalog, self.history)
        self._slots: dict[str, str] = {}
        # (principal, cost names, model, features) -> its template (see quota.templates).
        self._templates: dict[tuple[object, ...], Template] = {}

    @staticmethod
    def rule(lim: Limit) -> Rule:
        """What a decision needs of one limit, read once."""
        return rule_of(lim)

    # -- addressing --------------------------------------------------------------------------

    def op(self, who: Principal, plan: Plan, limit: Limit, now: int, cost: int) -> Op:
        """The op of one limit (peeks, top-ups, usage reads); acquires build theirs from the
        plan's precomputed rules."""
        slot = self.account_slot(who.account)
        return self.rule_op(self.rule(limit), who, plan, slot, now, cost)

    def rule_op(self, r: Rule, who: Principal, plan: Plan, slot: str, now: int, cost: int) -> Op:
        scope = r.scope
        return Op(
            slot if scope == "account" or scope == "key" else self.shared_slot(r, who, plan),
            field_name(r.name, "key", who.key, self.secret) if scope == "key" else r.name,
            r.meter,
            r.algorithm,
            r.static or self.timed_params(who, plan, r.limit, now),
            cost,
        )

    def shared_slot(self, r: Rule, who: Principal, plan: Plan) -> str:
        """The slot of a limit shared beyond one account: the global slot, or the slot of
        the principal's group of the limit's kind (a PrincipalError when it has none)."""
        if r.scope == "global":
            return GLOBAL_SLOT
        name = who.groups.get(r.scope)
        if name is None:
            raise no_group(plan, r.limit)
        return group_slot(r.scope, name, self.secret)

    def timed_params(self, who: Principal, plan: Plan, limit: Limit, now: int) -> Params:
        """Params of the window algorithms: the window holding ``now``."""
        algo, amount, period = limit.algorithm, limit.amount, limit.period_ms
        if algo == HISTORY:  # usage history: (day_start, day_end, keep_from) in the plan's zone
            return self.days.params(now, self.catalog.zone_of(plan, limit))
        if algo == "fixed_window":
            offset = parse_offset_ms(limit.offset)
            start = (now - offset) // period * period + offset
            return (amount, start, start + period)
        if algo == "calendar":
            zone = self.catalog.zone_of(plan, limit)
            if limit.anchor != "cycle":
                start, end = self.windows.calendar(now, limit.unit, zone)
            elif who.cycle_start is None:  # never a calendar month instead: a silent misfit
                raise no_cycle_start(plan, limit)
            else:
                start, end = self.windows.cycle(now, to_ms(who.cycle_start), zone, limit.months)
            return (amount, start, end)
        if who.cycle_start is None:  # allowance
            raise no_cycle_start(plan, limit)
        start = to_ms(who.cycle_start)
        return (amount, start, start + period)

    # -- acquire -----------------------------------------------------------------------------

    def prepare(
        self,
        who: Principal,
        cost: Mapping[str, int],
        now: int,
        request_id: str | None,
        model: str | None,
        features: Iterable[str] | None,
    ) -> Prepared | Forbidden:
        """Ops for an acquire, or what the plan lacks (a 403 before anything is charged).

        The repeat case (the same principal, cost names, model and features inside the
        windows of its template) is a template lookup and a splice of the amounts. Anything
        the template cannot vouch for (no template yet or its windows ended, amounts that are
        not plain ints or whose aliases add up, a request id or model that is not a plain
        str, features that are not a frozenset) takes ``_prepare``, which checks everything."""
        if (
            type(cost) is dict
            and (features is None or type(features) is frozenset)
            and (model is None or type(model) is str)
            and (request_id is None or (type(request_id) is str and request_id))
        ):
            tpl = self._templates.get((who, tuple(cost), model, features or None))
            if tpl is not None and tpl.since <= now < tpl.until:
                ops = tpl.planned(tuple(cost.values()))
                if ops is not None:  # the template vouches for the amounts
                    return Prepared(
                        who, tpl.plan, tpl.rules, ops, now, request_id, tpl.slot, tpl.shadow,
                        (), tpl,
                    )  # fmt: skip
        return self._prepare(who, cost, now, request_id, model, features)

    def _prepare(
        self,
        who: Principal,
        cost: Mapping[str, int],
        now: int,
        request_id: str | None,
        model: str | None,
        features: Iterable[str] | None,
    ) -> Prepared | Forbidden:
        """``prepare`` with every check, in order: plan, cost, request id, entitlements."""
        plan = self.plan_of(who)
        amounts = self.catalog.canonical(cost)
        if request_id is not None and (not isinstance(request_id, str) or not request_id):
            raise CostError(f"request_id must be a non-empty string, got {request_id!r}")
        names, wanted = tuple(cost), self.selection.wanted(model, features)
        denial = self.selection.entitlement(plan, model, names, wanted)
        if denial is not None:
            return denial
        key = (who, names, model, wanted)
        tpl = self._templates.get(key)
        if tpl is None or not tpl.since <= now < tpl.until:
            tpl = self.template(who, plan, names, now, model)
            self._templates[key] = _bounded(self._templates, tpl, TEMPLATES)
        ops = tpl.splice(tuple(cost.values()), amounts)
        return Prepared(who, plan, tpl.rules, ops, now, request_id, tpl.slot, tpl.shadow, (), tpl)

    def template(
        self,
        who: Principal,
        plan: Plan,
        names: tuple[str, ...],
        now: int,
        model: str | None = None,
    ) -> Template:
        """The template of ``who``'s acquires of a cost naming ``names`` (validated meters and
        aliases) for ``model`` around ``now``; ``plan`` is ``who``'s (``plan_of``)."""
        of = self.catalog.meter_of
        meters = {name: of(name) for name in names}
        rules = self.selection.select(who, plan, tuple(dict.fromkeys(meters.values())), model)
        slot = self.account_slot(who.account)
        heads = tuple(self.rule_op(r, who, plan, slot, now, 0) for r in rules)
        tpl = Template(plan, rules, slot, heads, positions(names, meters, rules))
        if self.catalog.alerting:  # the engines watch its thresholds (quota.alerts)
            attach(tpl.targets.memo, self.catalog.alerts, [r.limit for r in rules], heads)
        return tpl

    def plan_of(self, who: Principal) -> Plan:
        """The plan ``who`` is on, its overrides applied (``quota.overrides``)."""
        return plan_of(self.catalog, who)

    def account_slot(self, account: str) -> str:
        slot = self._slots.get(account)
        if slot is None:
            slot = account_slot(account, self.secret)
            self._slots[account] = _bounded(self._slots, slot)
        return slot

    @staticmethod
    def without_shadow(prep: Prepared, denied: tuple[str, ...]) -> Prepared:
        """``prep`` again without its shadow limits, remembering which of them denied."""
        kept = [(r, op) for r, op in zip(prep.rules, prep.ops, strict=True) if not r.shadow]
        return Prepared(
            prep.who,
            prep.plan,
            tuple(r for r, _ in kept),
            tuple(op for _, op in kept),
            prep.now,
            prep.request_id,
            prep.slot,
            shadow_denied=denied,
        )

    # -- reads -------------------------------------------------------------------------------

    def usage_query(self, who: Principal, now: int, days: int) -> UsageQuery:
        """The history ops of ``who``'s account; ConfigError when history is off or ``days``
        is not 1..history_days."""
        kept = self.catalog.usage.history_days
        if not kept:
            raise ConfigError(
                f"catalog {self.catalog.name!r} keeps no usage history: set [usage] history_days"
            )
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= kept:
            raise ConfigError(
                f"days must be an integer from 1 to {kept} (history_days), got {days!r}"
            )
        plan = self.catalog.plan(who.plan)
        ops = tuple(self.op(who, plan, lim, now, 0) for lim in self.history)
        zone = self.catalog.zone_of(plan, self.history[0])
        return UsageQuery(tuple(lim.meter for lim in self.history), ops, now, zone, days)
