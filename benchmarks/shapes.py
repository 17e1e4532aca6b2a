"""What every library is asked to enforce: the limit shapes, the costs and the accounts.

``ONE`` is a single per-minute request limit; ``ZYLO`` has the four limits of the Zylo
``basic`` plan (requests per minute, sliding; requests per day and tokens per day, calendar
days; a per-key tool budget per minute, sliding), with capacities high enough that every
request of a throughput run is admitted. Each library turns these into its own objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["sliding", "calendar"]
Per = Literal["minute", "day"]
SECONDS: dict[str, int] = {"minute": 60, "day": 86_400}

ACCOUNTS = 100  # requests go round-robin over this many accounts, as on a real gateway
TOKENS = 500  # tokens charged per request on the daily token cap (a cost > 1)


@dataclass(frozen=True)
class Limit:
    name: str
    meter: str
    amount: int
    per: Per
    kind: Kind
    scope: Literal["account", "key"] = "account"

    @property
    def seconds(self) -> int:
        return SECONDS[self.per]


@dataclass(frozen=True)
class Shape:
    name: str  # also the quota plan's name
    limits: tuple[Limit, ...]
    cost: dict[str, int] = field(default_factory=dict)
    accounts: int = ACCOUNTS  # requests cycle over this many accounts

    def cost_of(self, lim: Limit) -> int:
        return self.cost[lim.meter]


ONE = Shape(
    "one",
    (Limit("rpm", "requests", 1_000_000, "minute", "sliding"),),
    {"requests": 1},
)
ZYLO = Shape(
    "basic",
    (
        Limit("rpm", "requests", 1_000_000, "minute", "sliding"),
        Limit("rpd", "requests", 100_000_000, "day", "calendar"),
        Limit("tpd", "tokens", 100_000_000_000, "day", "calendar"),
        Limit("search", "search", 1_000_000, "minute", "sliding", scope="key"),
    ),
    {"requests": 1, "tokens": TOKENS, "search": 1},
)


# The real Zylo basic plan (quota uses the built-in "zylo" catalog for it): a client of one
# account is blocked by "rpm" (and "web_extract") after 10 requests.
ZYLO_BASIC = Shape(
    "basic",
    (
        Limit("rpm", "requests", 10, "minute", "sliding"),
        Limit("rpd", "requests", 7_200, "day", "calendar"),
        Limit("tpd", "tokens", 200_000, "day", "calendar"),
        Limit("web_extract", "web_extract", 10, "minute", "sliding", scope="key"),
    ),
    {"requests": 1, "tokens": TOKENS, "web_extract": 1},
    accounts=1,
)


def catalog_dict(*shapes: Shape) -> dict[str, Any]:
    """A quota catalog (the dict form of a plan file) with one plan per shape."""
    plans: dict[str, Any] = {}
    for shape in shapes:
        limits = []
        for lim in shape.limits:
            algorithm = "sliding_window" if lim.kind == "sliding" else "calendar"
            limits.append(
                {
                    "name": lim.name,
                    "meter": lim.meter,
                    "rate": f"{lim.amount}/{lim.per}",
                    "algorithm": algorithm,
                    "scope": lim.scope,
                }
            )
        plans[shape.name] = {"limits": limits}
    return {"name": "bench", "meters": {"names": ["requests", "tokens", "search"]}, "plans": plans}


def accounts(n: int = ACCOUNTS) -> list[tuple[str, str]]:
    """(account id, API key) pairs."""
    return [(f"acct-{i:04d}", f"sk-bench-{i:04d}") for i in range(n)]
