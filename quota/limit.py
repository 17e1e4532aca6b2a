"""One limit: a rule on one meter (algorithm, capacity, period, scope, denial status)."""

from __future__ import annotations

import re
from math import gcd
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .algorithms import MAX_SAFE
from .rates import parse_duration_ms, parse_rate
from .windows import CALENDAR_UNITS, get_zone

#: What limit and meter names may be: plain identifiers, safe in storage keys and records.
NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")

AlgorithmName = Literal[
    "sliding_window",
    "token_bucket",
    "fixed_window",
    "calendar",
    "allowance",
    "balance",
    "concurrency",
    "history",  # usage history: made by the planner from [usage], never in plan files
]

_STRICT = ConfigDict(extra="forbid", frozen=True)
_DERIVED = {"amount", "period_ms", "unit", "months", "held"}
#: The scopes every catalog has; a catalog's ``groups`` add more (``org``, ``team``...).
SCOPES = ("account", "key", "global")
#: Algorithms whose capacity can be held back for higher priorities: a smaller limit read
#: against the same stored state is exact for them (a token bucket's state is its capacity).
RESERVABLE = ("sliding_window", "fixed_window", "calendar")


class Reserve(BaseModel):
    """A share of a limit's capacity held back for plans of at least ``priority``: a plan of a
    lower priority may use only ``1 - share`` of it (rounded down)."""

    model_config = _STRICT

    share: float = Field(gt=0, lt=1)
    priority: int = Field(ge=1)


_DEFAULT_STATUS = {"balance": 402}
_DEFAULT_CODE = {"balance": "insufficient_quota", "allowance": "trial_exhausted"}


class Limit(BaseModel):
    """One rule on one meter. Write ``rate`` ("10/minute"), or ``limit`` (+ ``period``)."""

    model_config = _STRICT

    name: str = Field(min_length=1, pattern=NAME.pattern)
    meter: str = Field(min_length=1)
    algorithm: AlgorithmName = "sliding_window"
    rate: str | None = None
    limit: int | None = Field(default=None, ge=0)
    period: str | int | None = None
    scope: str = Field(
        default="account",
        pattern=NAME.pattern,
        description="account, key, global, or a group kind the catalog names (org, team...)",
    )
    models: list[str] | None = Field(
        default=None,
        min_length=1,
        description="only requests for these models (ids, globs or tiers) count and are checked",
    )
    reserve: Reserve | None = None
    status: int = Field(default=0, description="HTTP status on denial; 429, or 402 for balance")
    code: str = ""
    message: str = ""
    precision: int = Field(default=32, ge=1, le=1024)
    burst: int | None = Field(default=None, ge=1)
    offset: str | int = 0
    timezone: str | None = None
    anchor: Literal["calendar", "cycle"] = "calendar"
    lease: str | int = "5 minutes"
    grant: int = Field(default=0, ge=0)
    on_error: Literal["allow", "deny", "local"] | None = Field(
        default=None,
        description="when the store fails; default: the limiter's, else deny for"
        " balances and allow for the rest",
    )
    shadow: bool = Field(
        default=False, description="evaluate and report (Decision.shadow_denied), never deny"
    )
    alerts: list[int] | None = Field(
        default=None,
        description="alert at these percentages of its capacity (instead of [alerts] used;"
        " [] for none): windowed limits only",
    )

    # Derived by validation.
    amount: int = Field(default=0, exclude=True)
    period_ms: int = Field(default=0, exclude=True)
    unit: str = Field(default="", exclude=True)
    months: int = Field(default=0, exclude=True)
    held: int = Field(default=0, exclude=True)  # capacity held back from this plan (reserve)

    @model_validator(mode="before")
    @classmethod
    def _derive(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        unknown = sorted(set(data) - set(cls.model_fields) | _DERIVED & set(data))
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r} (check its spelling)")
        algo = data.get("algorithm", "sliding_window")
        if algo == "history":
            raise ValueError("'history' is not a plan limit: set [usage] history_days instead")
        algo = algo if isinstance(algo, str) else "?"  # a non-string fails validation below
        data.setdefault("status", _DEFAULT_STATUS.get(algo, 429))
        data.setdefault("code", _DEFAULT_CODE.get(algo, "rate_limit_exceeded"))
        rate, limit, period = data.get("rate"), data.get("limit"), data.get("period")
        if algo == "balance":
            for k in ("rate", "limit", "period"):
                if data.get(k) is not None:
                    raise ValueError(f"a balance has no {k!r}: give its starting 'grant'")
            data["amount"] = data.get("grant", 0)
            return data
        if algo == "concurrency":
            if limit is None or rate is not None:
                raise ValueError("a concurrency limit takes 'limit' (requests in flight), no rate")
            data["amount"] = limit
            data["period_ms"] = parse_duration_ms(data.get("lease", "5 minutes"))
            return data
        if rate is not None:
            if limit is not None or period is not None:
                raise ValueError("give either 'rate' or 'limit' and 'period', not both")
            parsed = parse_rate(str(rate))
        elif limit is not None and period is not None:
            parsed = parse_rate(f"{limit}/{period}")
        else:
            raise ValueError("missing 'rate' (e.g. '10/minute'), or 'limit' with 'period'")
        if parsed.amount < 1:  # name what the file says: the rate, or its 'limit' field
            if rate is not None:
                raise ValueError(
                    f"bad rate {rate!r}: the limit must be at least 1, got {parsed.amount}"
                )
            raise ValueError(f"'limit' must be at least 1, got {limit!r}")
        data["amount"], data["period_ms"] = parsed.amount, parsed.period_ms
        if algo == "calendar":
            if parsed.unit not in CALENDAR_UNITS:
                raise ValueError(f"a calendar limit counts per {', '.join(CALENDAR_UNITS)}")
            cycle = data.get("anchor") == "cycle"
            if cycle and parsed.unit != "month":
                raise ValueError("anchor = 'cycle' needs a monthly rate, e.g. '1000/month'")
            if parsed.multiples != 1 and not cycle:
                raise ValueError("a calendar limit counts per one unit ('/day', '/month')")
            data["unit"], data["months"] = parsed.unit, parsed.multiples
        return data

    @model_validator(mode="after")
    def _check(self) -> Limit:
        if self.algorithm == "token_bucket":
            burst = self.burst or self.amount
            if burst * (self.period_ms // gcd(self.amount, self.period_ms)) > MAX_SAFE:
                raise ValueError("burst x period is too large for exact integer arithmetic")
        if self.algorithm != "token_bucket" and self.burst is not None:
            raise ValueError("'burst' applies to token_bucket only")
        if self.anchor == "cycle" and self.algorithm != "calendar":
            raise ValueError("anchor = 'cycle' applies to calendar limits only")
        if self.timezone is not None:
            get_zone(self.timezone)
        if self.algorithm == "fixed_window":
            parse_offset_ms(self.offset)
        if self.reserve is not None and self.algorithm not in RESERVABLE:
            raise ValueError(
                f"'reserve' applies to {', '.join(RESERVABLE)} limits, not {self.algorithm}"
            )
        if self.alerts is not None:
            if self.algorithm not in ("sliding_window", "fixed_window", "calendar", "allowance"):
                raise ValueError(f"'alerts' applies to windowed limits, not {self.algorithm}")
            if any(not 1 <= p <= 100 for p in self.alerts):
                raise ValueError(f"'alerts' are percentages from 1 to 100, got {self.alerts!r}")
            object.__setattr__(self, "alerts", sorted(set(self.alerts)))
        if self.models is not None and not all(isinstance(m, str) and m for m in self.models):
            raise ValueError("'models' lists model ids, globs or tiers: non-empty strings")
        return self

    def held_back(self, priority: int) -> Limit:
        """This limit as a plan of ``priority`` sees it: with its reserve held back when the
        plan's priority is below the reserve's (a smaller ``amount``, ``held`` the rest)."""
        if self.reserve is None or priority >= self.reserve.priority:
            return self
        open_ = int(self.amount * (1 - self.reserve.share))
        return self.model_copy(update={"amount": open_, "held": self.amount - open_})

    @property
    def capacity(self) -> int:
        """The most one cost may be: larger costs can never be admitted."""
        return (self.burst or self.amount) if self.algorithm == "token_bucket" else self.amount

    @property
    def needs_cycle_start(self) -> bool:
        """Whether its windows start at the principal's ``cycle_start``: a one-time allowance,
        or calendar months anchored on the billing cycle."""
        return self.algorithm == "allowance" or self.anchor == "cycle"

    @property
    def window_seconds(self) -> float | None:
        """The policy window for headers; None for balances and concurrency."""
        if self.algorithm in ("balance", "concurrency"):
            return None
        return self.period_ms / 1000


def parse_offset_ms(value: str | int) -> int:
    """Offset of fixed windows from the epoch: seconds, or a duration string."""
    return 0 if value in (0, "0", "") else parse_duration_ms(value)
