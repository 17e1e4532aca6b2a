"""The component schemas of the admin API's OpenAPI document: the bodies it takes and
answers. The catalog fills in what it knows (plan names, the meters a top-up may name)."""

from __future__ import annotations

from typing import Any

from ..catalog import Catalog

JSON = dict[str, Any]

INTEGER: JSON = {"type": "integer"}
COUNTS: JSON = {"type": "object", "additionalProperties": INTEGER}
DAILY: JSON = {"type": "object", "additionalProperties": COUNTS}
PLAIN: JSON = {"type": "object", "additionalProperties": True}
STRING: JSON = {"type": "string"}


def ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: list[str], **properties: JSON) -> JSON:
    """An object schema with its required fields."""
    schema: JSON = {"type": "object", "properties": properties}
    if required:  # OpenAPI 3.0: a ``required`` list is never empty
        schema["required"] = required
    return schema


def const(value: str) -> JSON:
    return {"type": "string", "enum": [value]}


ERROR = obj(
    ["error"],
    error=obj(
        ["message", "type", "code"],
        message=STRING,
        type=STRING,
        param={"type": "string", "nullable": True},
        code=STRING,
    ),
)

LIMIT_STATE = obj(
    ["name", "meter", "algorithm", "scope", "limit", "remaining", "used", "resets_in_seconds",
     "resets_at"],
    name=STRING, meter=STRING, algorithm=STRING, scope=STRING,
    limit=INTEGER, remaining=INTEGER, used=INTEGER,
    window_seconds={"type": "number", "nullable": True},
    resets_in_seconds={"type": "number"},
    resets_at={"type": "string", "format": "date-time"},
)  # fmt: skip

USAGE = {
    **obj(["timezone", "today", "daily"], timezone=STRING, today=COUNTS, daily=DAILY),
    "nullable": True,
}

NEAREST = obj(
    ["object", "accounts"],
    object=const("list"),
    accounts={"type": "array", "items": obj(
        ["account", "plan"],
        account=STRING, plan=STRING, limit={"type": "string", "nullable": True},
        used=INTEGER, max=INTEGER, fraction_used={"type": "number", "minimum": 0}, error=STRING,
    )},
)  # fmt: skip

STATIC: JSON = {
    "Error": ERROR,
    "LimitState": LIMIT_STATE,
    "Daily": DAILY,
    "Nearest": NEAREST,
    "TopUpResult": obj(
        ["object", "account", "meter", "balance"],
        object=const("top_up"), account=STRING, meter=STRING, balance=INTEGER,
    ),
    "Reset": {"type": "object", "properties": {
        "include_balance": {"type": "boolean", "default": False},
        "include_groups": {"type": "boolean", "default": False},
    }},
    "ResetResult": obj(
        ["object", "account", "include_balance", "include_groups"],
        object=const("reset"), account=STRING,
        include_balance={"type": "boolean"}, include_groups={"type": "boolean"},
    ),
    "OverrideValue": obj(["value"], value={
        "oneOf": [{"type": "string", "example": "50000/day"}, PLAIN],
        "description": "a new rate, or the limit's fields to change, as in a plan file",
    }),
    "Overrides": obj(
        ["object", "account", "overrides"],
        object=const("overrides"), account=STRING, overrides=PLAIN,
    ),
}  # fmt: skip


def schemas(catalog: Catalog) -> JSON:
    """Every component schema, with the catalog's plans and balance meters filled in."""
    account = obj(
        ["object", "account", "plan", "now", "balances", "limits", "usage"],
        object=const("account"),
        account=STRING,
        plan=obj(["name"], name={"type": "string", "enum": list(catalog.plans)}),
        now={"type": "string", "format": "date-time"},
        credits={**obj([], balance=INTEGER, limit=INTEGER), "nullable": True},
        balances=COUNTS,
        limits={"type": "array", "items": ref("LimitState")},
        usage=USAGE,
        groups={"type": "object", "additionalProperties": STRING},
        overrides=PLAIN,
    )
    top_up = obj(
        ["meter", "amount"],
        meter={"type": "string", "enum": balance_names(catalog) or ["credits"]},
        amount={"type": "integer", "minimum": 1, "maximum": 2**53 - 1},
    )
    return {**STATIC, "Account": account, "TopUp": top_up}


def balance_names(catalog: Catalog) -> list[str]:
    """What a top-up may name: the balances' limit names and meters."""
    names = {
        lim.name for p in catalog.plans.values() for lim in p.limits if lim.algorithm == "balance"
    }
    meters = {
        lim.meter for p in catalog.plans.values() for lim in p.limits if lim.algorithm == "balance"
    }
    return sorted(names | meters)
