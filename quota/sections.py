"""The catalog's sections beside its plans: ``[models]`` (tiers and prices), ``[meters]``
(names and aliases), ``[headers]`` (styles and custom names) and ``[usage]`` (history)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .limit import NAME

__all__ = ["MAX_DAYS", "HeaderConfig", "HeaderStyle", "Meters", "ModelInfo", "UsageConfig"]

HeaderStyle = Literal["ietf", "openai", "legacy", "custom"]
_STRICT = ConfigDict(extra="forbid", frozen=True)
_DEFAULT_STYLES: tuple[HeaderStyle, ...] = ("ietf", "openai")


class ModelInfo(BaseModel):
    """A model's tier, and its price in credits per million input and output tokens."""

    model_config = _STRICT

    tier: str
    input_price: int = Field(default=0, ge=0)
    output_price: int = Field(default=0, ge=0)


class Meters(BaseModel):
    """Extra meter names, and aliases that feed one meter from several names."""

    model_config = _STRICT

    names: list[str] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _identifiers(self) -> Meters:
        # Meter names travel into storage records (Redis): keep them plain identifiers.
        for name in [*self.names, *self.aliases, *self.aliases.values()]:
            if not NAME.fullmatch(name):
                raise ValueError(f"meter name {name!r} must match {NAME.pattern}")
        return self


class HeaderConfig(BaseModel):
    """Which header styles responses carry, and custom header names.

    ``custom`` maps a header name to ``"<limit or meter>.<field>"``, field one of ``limit``,
    ``remaining``, ``reset`` (seconds until the reset) or ``used``.
    """

    model_config = _STRICT

    styles: list[HeaderStyle] = Field(default_factory=lambda: list(_DEFAULT_STYLES))
    custom: dict[str, str] = Field(default_factory=dict)


#: The most days a history may keep (a year and a day: daily entries stay well under 2**53).
MAX_DAYS = 366


class UsageConfig(BaseModel):
    """``[usage]`` of a catalog: ``history_days`` = how many days of daily totals per meter
    each account keeps (0 = no history)."""

    model_config = _STRICT

    history_days: int = Field(default=0, ge=0, le=MAX_DAYS)
