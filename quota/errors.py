"""Exceptions raised by quota: each names the problem and the offending value."""

from __future__ import annotations


class QuotaError(Exception):
    """Base class of every error quota raises on purpose."""


class CatalogError(QuotaError, ValueError):
    """A plan file or catalog is malformed; the message names the plan, the limit and the field."""


class UnknownPlanError(QuotaError, KeyError):
    """A principal names a plan that the catalog does not define."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown plan"


class CostError(QuotaError, ValueError):
    """A cost, actual usage or amount is malformed: negative, not an integer, unknown meter."""


class PrincipalError(CostError):
    """A principal lacks a field its plan needs: ``cycle_start`` for a one-time allowance (a
    trial) or a calendar month anchored on the billing cycle. ``field``, ``plan`` and ``limit``
    name what is missing and where. A ``CostError``, as this case was before it had a class of
    its own, so code that catches ``CostError`` keeps working."""

    def __init__(self, message: str, field: str = "", plan: str = "", limit: str = "") -> None:
        super().__init__(message)
        self.field, self.plan, self.limit = field, plan, limit


class ConfigError(QuotaError, ValueError):
    """A limiter is built with a bad argument: an unknown storage URL, a bad option."""


class BackendError(QuotaError):
    """The storage engine failed or is unreachable."""
