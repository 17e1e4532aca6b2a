"""Who is asking: ``Principal``, the account a decision charges, with its plan, its API key,
its billing anchor, the groups it belongs to and the overrides of its deal.

Frozen and hashable: the planner keys its templates by the principal, so its mappings are
``FrozenMap``s (``quota.frozen``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from .frozen import FrozenMap, freeze
from .limit import NAME

__all__ = ["Principal"]


class Principal(BaseModel):
    """Who is asking: the account whose budgets these are, its plan, and optionally the API key
    (for per-key scopes; only a keyed hash of it is ever stored) and the billing anchor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str = Field(min_length=1)
    plan: str = Field(min_length=1)
    key: str | None = Field(default=None, repr=False)
    cycle_start: dt.datetime | None = None
    groups: Annotated[dict[str, str], AfterValidator(freeze)] = Field(
        default_factory=FrozenMap,
        description="the groups this account belongs to, by kind: {'org': 'acme', 'team': 'ml'}",
    )
    overrides: Annotated[dict[str, str | dict[str, Any]], AfterValidator(freeze)] = Field(
        default_factory=FrozenMap,
        description="per-limit changes for a custom deal: {'rpd': '50000/day'} (a rate) or"
        " {'credits': {'grant': 5000000}} (fields of the limit)",
    )

    @field_validator("groups")
    @classmethod
    def _groups(cls, groups: dict[str, str]) -> dict[str, str]:
        for kind, name in groups.items():
            if not NAME.fullmatch(kind) or not isinstance(name, str) or not name:
                raise ValueError(
                    f"groups maps a group kind (a plain identifier) to a non-empty name:"
                    f" got {kind!r}: {name!r}"
                )
        return groups
