"""What applies to a request: the rules of its plan that it meets, and the entitlements it
asks for.

A request meets the limits of its plan on the meters its cost names; a per-model limit
(``Limit.models``: ids, globs or tiers) only when the request's model matches, as plan
entitlements match (``Catalog.allows_model``). A request without a model meets none of them.
Entitlements: the model and features a request asks for, checked against the plan before
anything is charged (a 403). Both are worked out once per (plan, deal, meters or names,
model, features) and cached, bounded; the planner (``quota.planner``) asks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .catalog import Catalog, Plan, Principal
from .errors import CostError
from .limit import Limit
from .rules import Rule, for_model, rule_of

#: What a plan lacks for a request: (what, code, message), e.g. ("model", "model_not_allowed", ...)
Forbidden = tuple[str, str, str]

#: Bound on each cache; cleared whole when full (costs one recomputation each).
_CACHE_SIZE = 65_536


def _room(cache: dict[Any, Any]) -> dict[Any, Any]:
    """``cache``, emptied first when full (the caller then stores one entry)."""
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    return cache


class Selection:
    """The rules and entitlements of the catalog's plans, by request (no I/O)."""

    def __init__(self, catalog: Catalog, history: tuple[Limit, ...] = ()) -> None:
        self.catalog = catalog
        self.history = history  # usage history's hidden limits: every plan has them
        # Feature names that are also meters (native tools): a cost on one needs the feature.
        named = {f for plan in catalog.plans.values() for f in plan.features} - {"*"}
        self.metered_features = named & (catalog.meter_names | set(catalog.meters.aliases))
        self._rules = {name: self.rules_of(plan) for name, plan in catalog.plans.items()}
        # (plan, overrides, cost meters, model) -> the rules that apply.
        self._selected: dict[tuple[object, ...], tuple[Rule, ...]] = {}
        self._entitled: dict[tuple[object, ...], Forbidden | None] = {}

    def rules_of(self, plan: Plan) -> tuple[Rule, ...]:
        """The rules of every limit of ``plan``, usage history last."""
        return tuple(rule_of(lim) for lim in (*plan.limits, *self.history))

    def meets(self, limit: Limit, model: str | None) -> bool:
        """Whether a request for ``model`` meets ``limit`` (per-model limits: a matching
        model; the others: always)."""
        if limit.models is None:
            return True
        return model is not None and for_model(
            tuple(limit.models), model, self.catalog.tier_of(model)
        )

    def select(
        self, who: Principal, plan: Plan, meters: tuple[str, ...], model: str | None
    ) -> tuple[Rule, ...]:
        """The rules of ``plan`` (``who``'s deal, when it has overrides) that an acquire
        charging ``meters`` for ``model`` meets: those on its meters, per-model limits only
        when the model matches."""
        deal = who.overrides or None
        every = self._rules[plan.name] if deal is None else None
        if every is not None and not any(r.models for r in every):
            model = None  # the same rules for every model: one cache entry
        key = (plan.name, deal, meters, model)
        rules = self._selected.get(key)
        if rules is None:
            every = every or self.rules_of(plan)
            tier = "" if model is None else self.catalog.tier_of(model)
            rules = tuple(
                r
                for r in every
                if r.meter in meters
                and (r.models is None or (model is not None and for_model(r.models, model, tier)))
            )
            _room(self._selected)[key] = rules
        return rules

    # -- entitlements ------------------------------------------------------------------------

    @staticmethod
    def wanted(model: str | None, features: Iterable[str] | None) -> frozenset[str] | None:
        """The features a request asks for (None: none), after checking its arguments."""
        if not (model is None or type(model) is str) or isinstance(features, str | bytes):
            raise CostError(f"model must be a string and features a set of names: {model!r}")
        try:
            return frozenset(features) if features else None
        except TypeError:
            raise CostError(f"features must be a set of feature names, got {features!r}") from None

    def entitlement(
        self, plan: Plan, model: str | None, names: tuple[str, ...], wanted: frozenset[str] | None
    ) -> Forbidden | None:
        """(what, code, message) of the first entitlement ``plan`` lacks, or None."""
        key = (plan.name, model, names, wanted)
        if key in self._entitled:
            return self._entitled[key]
        found = self._entitlement(plan, model, names, wanted or frozenset())
        _room(self._entitled)[key] = found
        return found

    def _entitlement(
        self, plan: Plan, model: str | None, names: tuple[str, ...], features: frozenset[str]
    ) -> Forbidden | None:
        if model is not None and not self.catalog.allows_model(plan, model):
            tier = self.catalog.tier_of(model)
            msg = f"model {model!r} ({tier} tier) is not available on plan {plan.name!r}"
            return "model", "model_not_allowed", msg
        wanted = set(features)
        metered, meter_of = self.metered_features, self.catalog.meter_of
        wanted.update(name for name in names if name in metered or meter_of(name) in metered)
        for feature in sorted(wanted):
            if not self.catalog.allows_feature(plan, feature):
                msg = f"{feature!r} is not available on plan {plan.name!r}"
                return f"feature:{feature}", "feature_not_allowed", msg
        return None
