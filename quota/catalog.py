"""The plan catalog: meters, aliases, model tiers, plans and their limits, and who is asking.

Validated by pydantic; reading files lives in ``quota.loader``, the wording of validation
errors in ``quota.validation``.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .alerts import AlertConfig
from .algorithms import MAX_SAFE
from .errors import CostError, UnknownPlanError
from .limit import NAME, SCOPES, Limit
from .loader import read_catalog
from .principal import Principal as Principal
from .sections import HeaderConfig as HeaderConfig
from .sections import Meters, ModelInfo, UsageConfig
from .validation import invalid
from .windows import get_zone

_STRICT = ConfigDict(extra="forbid", frozen=True)


class Plan(BaseModel):
    """A named set of limits plus entitlements: which models and which features."""

    model_config = _STRICT

    name: str = ""
    description: str = ""
    price: str = ""
    models: list[str] = Field(default_factory=lambda: ["*"])
    features: list[str] = Field(default_factory=list)
    limits: list[Limit] = Field(default_factory=list)
    success_only: bool = False
    timezone: str | None = None
    priority: int = Field(
        default=0,
        ge=0,
        description="rank for shared capacity: limits with a 'reserve' hold"
        " part of theirs for plans of at least the reserve's priority",
    )

    @field_validator("limits")
    @classmethod
    def _unique(cls, limits: list[Limit]) -> list[Limit]:
        seen: set[str] = set()
        for lim in limits:
            if lim.name in seen:
                raise ValueError(f"two limits are named {lim.name!r}")
            seen.add(lim.name)
        return limits

    def limits_on(self, meter: str) -> list[Limit]:
        return [lim for lim in self.limits if lim.meter == meter]


class Catalog(BaseModel):
    """All plans, meters, aliases and model tiers of one product."""

    model_config = _STRICT

    name: str = "custom"
    description: str = ""
    default_tier: str = "basic"
    timezone: str = "UTC"
    reservation_ttl: int = Field(default=900, ge=1, description="seconds a reservation is kept")
    meters: Meters = Field(default_factory=Meters)
    models: dict[str, ModelInfo] = Field(default_factory=dict)
    plans: dict[str, Plan]
    headers: HeaderConfig = Field(default_factory=HeaderConfig)
    usage: UsageConfig = Field(default_factory=UsageConfig)  # [usage] history_days
    groups: list[str] = Field(
        default_factory=list,
        description="group kinds a principal may belong to (org, team...): limit scopes",
    )
    alerts: AlertConfig = Field(default_factory=AlertConfig)  # [alerts]: quota.alerts

    @cached_property
    def alerting(self) -> bool:
        """Whether any threshold alert is declared (else acquires watch nothing)."""
        return self.alerts.active(lim for plan in self.plans.values() for lim in plan.limits)

    @model_validator(mode="before")
    @classmethod
    def _name_plans(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("plans"), dict):
            plans = {}
            for key, plan in data["plans"].items():
                plans[key] = {**plan, "name": key} if isinstance(plan, dict) else plan
            data = {**data, "plans": plans}
        return data

    @model_validator(mode="after")
    def _check(self) -> Catalog:
        get_zone(self.timezone)
        aliases = self.meters.aliases
        if not self.plans:
            raise ValueError("a catalog needs at least one plan")
        for alias, target in aliases.items():
            if target in aliases:
                raise ValueError(f"alias {alias!r} points to another alias {target!r}")
        self._check_groups()
        seen: dict[str, tuple[str, Limit]] = {}
        for plan in self.plans.values():
            if plan.timezone is not None:
                get_zone(plan.timezone)
            for lim in plan.limits:
                where = f"plan {plan.name!r}, limit {lim.name!r}"
                if lim.scope not in SCOPES and lim.scope not in self.groups:
                    raise ValueError(
                        f"{where}: scope {lim.scope!r} is none of {', '.join(SCOPES)} and no"
                        f" group this catalog names (groups = {self.groups!r})"
                    )
                if lim.meter in aliases:
                    raise ValueError(
                        f"{where}: meter {lim.meter!r} is an alias of {aliases[lim.meter]!r};"
                        f" limit {aliases[lim.meter]!r} instead"
                    )
                if lim.name in seen:
                    other_plan, other = seen[lim.name]
                    for attr in ("algorithm", "meter", "scope", "on_error"):
                        if getattr(lim, attr) != getattr(other, attr):
                            raise ValueError(
                                f"{where}: {attr} {getattr(lim, attr)!r} differs from"
                                f" {getattr(other, attr)!r} in plan {other_plan!r}; a limit name"
                                " keeps its algorithm, meter, scope and on_error in every plan (its"
                                " state carries over when an account changes plan)"
                            )
                seen[lim.name] = (plan.name, lim)
            # A plan below a limit's reserve priority sees the limit without the reserve.
            held = [lim.held_back(plan.priority) for lim in plan.limits]
            if any(a is not b for a, b in zip(held, plan.limits, strict=True)):
                object.__setattr__(plan, "limits", held)  # validated above; frozen after
        return self

    def _check_groups(self) -> None:
        for kind in self.groups:
            if not NAME.fullmatch(kind) or kind in SCOPES:
                raise ValueError(
                    f"group {kind!r} must be a plain identifier and none of {', '.join(SCOPES)}"
                )
        if len(set(self.groups)) < len(self.groups):
            raise ValueError(f"groups names a group twice: {self.groups!r}")

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def load(cls, source: str | Path | Mapping[str, Any]) -> Catalog:
        """Load a built-in catalog by name (``"zylo"``), a .toml/.yaml/.json file, or a dict;
        CatalogError naming the file, plan, limit and field of every problem."""
        data, where = read_catalog(source)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise invalid(exc, data, where) from None

    # -- queries -----------------------------------------------------------------------------

    def plan(self, name: str) -> Plan:
        """The plan called ``name``; UnknownPlanError listing the known plans otherwise."""
        try:
            return self.plans[name]
        except KeyError:
            known = ", ".join(sorted(self.plans))
            raise UnknownPlanError(f"unknown plan {name!r}; this catalog has: {known}") from None

    @cached_property
    def meter_names(self) -> frozenset[str]:
        """Every meter the catalog knows: limited meters, declared names, alias targets."""
        names = set(self.meters.names) | set(self.meters.aliases.values())
        for plan in self.plans.values():
            names.update(lim.meter for lim in plan.limits)
        return frozenset(names)

    def meter_of(self, name: str) -> str:
        """The meter a name feeds: its alias target, or the name itself."""
        return self.meters.aliases.get(name, name)

    def canonical(self, cost: Mapping[str, int], what: str = "cost") -> dict[str, int]:
        """Map aliases onto meters and sum: ``{"google_search": 1, "url_context": 1}`` ->
        ``{"search": 2}``. Rejects negative or non-integer amounts and unknown meters."""
        if not isinstance(cost, Mapping):
            raise CostError(f"{what} must be a mapping of meter -> amount, got {cost!r}")
        fast = self._meter_index
        out: dict[str, int] = {}
        for name, amount in cost.items():
            meter = fast.get(name)
            if meter is not None and type(amount) is int and 0 <= amount <= MAX_SAFE:
                if meter in out:
                    amount += out[meter]
                    if amount > MAX_SAFE:
                        raise CostError(f"{what} for meter {meter!r} is too large: {amount}")
                out[meter] = amount
                continue
            self._check_amount(name, amount, what)  # raises, unless an int subclass
            total = out.get(fast[name], 0) + int(amount)
            if total > MAX_SAFE:
                raise CostError(f"{what} for meter {fast[name]!r} is too large: {total}")
            out[fast[name]] = total
        return out

    @cached_property
    def _meter_index(self) -> dict[str, str]:
        """Every name a cost may use (meters and aliases) -> its meter."""
        index = {name: name for name in self.meter_names}
        index.update(self.meters.aliases)
        return index

    def _check_amount(self, name: str, amount: object, what: str) -> None:
        """Raise the CostError that names what is wrong with one entry of a cost."""
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise CostError(f"{what} for {name!r} must be an integer, got {amount!r}")
        if amount < 0:
            raise CostError(f"{what} for {name!r} must not be negative, got {amount}")
        if amount > MAX_SAFE:
            raise CostError(f"{what} for {name!r} is too large: {amount}")
        if name not in self._meter_index:
            known = ", ".join(sorted(self.meter_names))
            raise CostError(f"unknown meter {name!r} in {what}; known: {known}")

    def tier_of(self, model: str) -> str:
        """The tier of ``model``: an exact id, then glob patterns, else ``default_tier``."""
        info = self.model_info(model)
        return info.tier if info else self.default_tier

    def model_info(self, model: str) -> ModelInfo | None:
        """The catalog's entry for ``model``: its exact id first, then glob patterns."""
        info = self.models.get(model)
        if info is None:
            for pattern, candidate in self.models.items():
                if fnmatch.fnmatchcase(model, pattern):
                    return candidate
        return info

    def allows_model(self, plan: Plan, model: str) -> bool:
        """Whether ``plan`` may call ``model`` (by tier, model id or glob)."""
        tier = self.tier_of(model)
        return any(e == tier or fnmatch.fnmatchcase(model, e) for e in plan.models)

    def allows_feature(self, plan: Plan, feature: str) -> bool:
        """Whether ``plan`` has ``feature``; aliases apply (``google_search`` -> ``search``)."""
        canonical = self.meter_of(feature)
        return "*" in plan.features or feature in plan.features or canonical in plan.features

    def price(self, model: str, input_tokens: int, output_tokens: int) -> int:
        """Credits for a call: per-million-token prices, rounded up; 0 for unpriced models."""
        info = self.model_info(model)
        if info is None:
            return 0
        raw = input_tokens * info.input_price + output_tokens * info.output_price
        return -(-raw // 1_000_000)

    def zone_of(self, plan: Plan, limit: Limit) -> dt.tzinfo:
        return get_zone(limit.timezone or plan.timezone or self.timezone)
