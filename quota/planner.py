"""From a principal and a cost to engine operations, and from an engine verdict to a Decision.

Everything a decision needs that is not stored state lives here: plan lookup, cost validation,
entitlements, calendar windows, storage names. Limiter and AsyncLimiter share it and differ
only in how they call their engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from math import gcd

from .algorithms import Charge, Outcome, Params
from .backends.base import Op, Verdict
from .catalog import Catalog, Plan, Principal
from .decision import Decision, LimitState, Reservation
from .errors import CostError
from .keys import DEFAULT_SECRET, GLOBAL_SLOT, account_slot, field_name
from .limit import Limit, parse_offset_ms
from .windows import WindowCache, to_ms


@dataclass(frozen=True, slots=True)
class Prepared:
    """A decision ready for the engine: the limits and the ops that address them."""

    who: Principal
    plan: Plan
    limits: tuple[Limit, ...]
    ops: tuple[Op, ...]
    now: int
    request_id: str | None
    slot: str


class Planner:
    """Catalog-side logic of the limiter (no I/O)."""

    def __init__(self, catalog: Catalog, secret: bytes = DEFAULT_SECRET) -> None:
        self.catalog = catalog
        self.secret = secret
        self.windows = WindowCache()
        # Feature names that are also meters (native tools): a cost on one needs the feature.
        named = {f for plan in catalog.plans.values() for f in plan.features} - {"*"}
        self.metered_features = named & (catalog.meter_names | set(catalog.meters.aliases))

    # -- addressing --------------------------------------------------------------------------

    def slot(self, who: Principal, limit: Limit) -> str:
        return GLOBAL_SLOT if limit.scope == "global" else account_slot(who.account, self.secret)

    def op(self, who: Principal, plan: Plan, limit: Limit, now: int, cost: int) -> Op:
        return Op(
            self.slot(who, limit),
            field_name(limit.name, limit.scope, who.key, self.secret),
            limit.meter,
            limit.algorithm,
            self.params(who, plan, limit, now),
            cost,
        )

    def params(self, who: Principal, plan: Plan, limit: Limit, now: int) -> Params:
        """The integer params of ``limit`` at ``now`` (windows computed here, not in engines)."""
        algo, amount, period = limit.algorithm, limit.amount, limit.period_ms
        if algo == "sliding_window":
            return (amount, period, limit.precision)
        if algo == "token_bucket":
            g = gcd(amount, period)
            return (amount // g, period // g, limit.capacity)
        if algo == "fixed_window":
            offset = parse_offset_ms(limit.offset)
            start = (now - offset) // period * period + offset
            return (amount, start, start + period)
        if algo == "calendar":
            zone = self.catalog.zone_of(plan, limit)
            if limit.anchor == "cycle" and who.cycle_start is not None:
                start, end = self.windows.cycle(now, to_ms(who.cycle_start), zone, limit.months)
            else:
                start, end = self.windows.calendar(now, limit.unit, zone)
            return (amount, start, end)
        if algo == "allowance":
            if who.cycle_start is None:
                raise CostError(
                    f"limit {limit.name!r} is a one-time allowance that starts at the principal's"
                    " cycle_start: give Principal(cycle_start=...)"
                )
            start = to_ms(who.cycle_start)
            return (amount, start, start + period)
        if algo == "balance":
            return (limit.grant,)
        return (amount, period)  # concurrency: (limit, lease)

    # -- acquire -----------------------------------------------------------------------------

    def prepare(
        self,
        who: Principal,
        cost: Mapping[str, int],
        now: int,
        request_id: str | None,
        model: str | None,
        features: Iterable[str] | None,
    ) -> Prepared | Decision:
        """Ops for an acquire, or an entitlement denial (403) before anything is charged."""
        plan = self.catalog.plan(who.plan)
        amounts = self.catalog.canonical(cost)
        if request_id is not None and (not isinstance(request_id, str) or not request_id):
            raise CostError(f"request_id must be a non-empty string, got {request_id!r}")
        if model is not None and not self.catalog.allows_model(plan, model):
            tier = self.catalog.tier_of(model)
            return self._forbidden(
                who,
                now,
                "model",
                "model_not_allowed",
                f"model {model!r} ({tier} tier) is not available on plan {plan.name!r}",
            )
        wanted = set(features or ())
        wanted.update(
            name
            for name in cost
            if name in self.metered_features or self.catalog.meter_of(name) in self.metered_features
        )
        for feature in sorted(wanted):
            if not self.catalog.allows_feature(plan, feature):
                return self._forbidden(
                    who,
                    now,
                    f"feature:{feature}",
                    "feature_not_allowed",
                    f"{feature!r} is not available on plan {plan.name!r}",
                )
        limits = tuple(lim for lim in plan.limits if lim.meter in amounts)
        ops = tuple(self.op(who, plan, lim, now, amounts[lim.meter]) for lim in limits)
        slot = account_slot(who.account, self.secret)
        return Prepared(who, plan, limits, ops, now, request_id, slot)

    def _forbidden(self, who: Principal, now: int, what: str, code: str, msg: str) -> Decision:
        return Decision(
            allowed=False,
            status=403,
            principal=who,
            now=now / 1000,
            denied_by=what,
            code=code,
            message=msg,
            header_config=self.catalog.headers,
        )

    def decision(self, prep: Prepared, verdict: Verdict) -> Decision:
        """The public Decision for an engine verdict (replays map outcomes by field)."""
        by_field = dict(zip(verdict.fields, verdict.outcomes, strict=True))
        states = tuple(
            self.state(lim, op, by_field[op.field])
            for lim, op in zip(prep.limits, prep.ops, strict=True)
            if op.field in by_field
        )
        if verdict.allowed:
            charges: tuple[Charge, ...] = ()
            if prep.request_id is None:  # no record kept: the handle carries the charges
                charges = tuple(
                    Charge(op.slot, op.field, op.meter, op.algorithm, op.params, o.anchor, op.cost)
                    for op, o in zip(prep.ops, verdict.outcomes, strict=True)
                )
            return Decision(
                allowed=True,
                status=200,
                principal=prep.who,
                now=prep.now / 1000,
                states=states,
                request_id=prep.request_id,
                reservation=Reservation(prep.request_id, prep.slot, charges),
                replayed=verdict.replayed,
                source=verdict.source,
                header_config=self.catalog.headers,
            )
        denying = [s for s in states if not s.allowed]
        # The denial that binds longest: "never" beats any finite retry.
        worst = max(denying, key=lambda s: float("inf") if s.retry_after is None else s.retry_after)
        retry = None if any(s.retry_after is None for s in denying) else worst.retry_after
        limit = next(lim for lim in prep.limits if lim.name == worst.name)
        return Decision(
            allowed=False,
            principal=prep.who,
            now=prep.now / 1000,
            states=states,
            request_id=prep.request_id,
            header_config=self.catalog.headers,
            status=worst.status,
            denied_by=worst.name,
            retry_after=retry,
            code=worst.code,
            message=self.message(prep.plan, limit, retry),
            source=verdict.source,
        )

    def state(self, limit: Limit, op: Op, out: Outcome) -> LimitState:
        window = limit.window_seconds
        if limit.algorithm == "calendar":
            window = (op.params[2] - op.params[1]) / 1000
        return LimitState(
            name=limit.name,
            meter=limit.meter,
            algorithm=limit.algorithm,
            # A balance's "limit" is its grant, or more after top-ups: never below what remains.
            limit=max(limit.capacity, out.remaining)
            if limit.algorithm == "balance"
            else limit.capacity,
            remaining=out.remaining,
            reset_after=out.reset_after / 1000,
            retry_after=None if out.retry_after is None else out.retry_after / 1000,
            window=window,
            scope=limit.scope,
            allowed=out.allowed,
            status=limit.status,
            code=limit.code,
        )

    @staticmethod
    def message(plan: Plan, limit: Limit, retry: float | None) -> str:
        if limit.message:
            return limit.message
        if limit.algorithm == "balance":
            return f"out of {limit.meter} on plan {plan.name!r}: top up to continue"
        if limit.algorithm == "concurrency":
            text = f"too many {limit.meter} in flight (at most {limit.amount})"
        elif limit.algorithm == "allowance":
            text = f"the one-time allowance {limit.name!r} ({limit.amount} {limit.meter}) is over"
        else:
            rate = limit.rate or f"{limit.amount}/{limit.period}"
            text = f"limit {limit.name!r} reached: {rate} {limit.meter}"
        tail = f"; retry in {retry:.3f} s" if retry is not None else "; retrying will not help"
        return f"{text} on plan {plan.name!r}{tail}"
