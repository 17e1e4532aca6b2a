"""Which principal an admin request is about, and which accounts the dashboard lists.

A limiter reads an account's state through a ``Principal``: its plan says which limits to read,
its key and groups where the per-key and group-scoped ones live. The admin app asks, in order:

1. its resolver, ``resolve``: a mapping ``{account: Principal}`` or a function
   ``account -> Principal | None`` (sync or async), the gateway's own records;
2. else the query: ``?plan=go&key=sk-..&group=org=acme&cycle_start=2026-01-31T10:00:00Z``
   describes the principal (``plan`` is required then);
3. else 404: an account nobody knows.

The stored overrides (``quota.admin.Overrides``) are laid over what either gives. The
dashboard's list of accounts is ``accounts`` (a function returning account ids, or an
iterable), by default the resolver mapping's accounts.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping

from pydantic import ValidationError

from ..catalog import Catalog, Principal
from .http import HttpError, Request
from .overrides import Overrides

Resolve = (
    Mapping[str, Principal] | Callable[[str], "Principal | Awaitable[Principal | None] | None"]
)
Listing = Callable[[], Iterable[str]] | Iterable[str]


class Accounts:
    """The resolver, the account list and the override store of one admin app."""

    def __init__(
        self,
        catalog: Catalog,
        resolve: Resolve | None,
        accounts: Listing | None,
        overrides: Overrides,
    ) -> None:
        self.catalog = catalog
        self.resolve = resolve
        self.listing = accounts
        if accounts is None and isinstance(resolve, Mapping):
            self.listing = resolve.keys
        self.overrides = overrides

    async def principal(self, account: str, request: Request) -> Principal:
        """The principal of ``account`` (resolver, else the query), overrides applied."""
        who = await self.resolved(account)
        if who is None:
            who = self.from_query(account, request)
        elif who.account != account:
            who = Principal(**{**who.model_dump(), "account": account})
        if who.plan not in self.catalog.plans:
            known = ", ".join(self.catalog.plans)
            raise HttpError(
                422,
                f"unknown plan {who.plan!r}; this catalog has: {known}",
                "unknown_plan",
                param="plan",
            )
        return await self.overrides.aapply(who)

    async def resolved(self, account: str) -> Principal | None:
        """What the resolver says of ``account`` (None: it does not know it)."""
        if self.resolve is None:
            return None
        if isinstance(self.resolve, Mapping):
            return self.resolve.get(account)
        found = self.resolve(account)
        return await found if inspect.isawaitable(found) else found

    def from_query(self, account: str, request: Request) -> Principal:
        """The principal the query describes; 404 without ``plan``, 422 when it is bad."""
        plan = request.arg("plan")
        if not plan:
            raise HttpError(
                404,
                f"unknown account {account!r}: give its plan (?plan=...) to read it",
                "unknown_account",
            )
        groups: dict[str, str] = {}
        for text in request.args("group"):
            kind, sep, name = text.partition("=")
            if not sep or not kind or not name:
                raise HttpError(
                    422, f"group must be KIND=NAME, got {text!r}", "invalid_group", param="group"
                )
            groups[kind] = name
        start = request.arg("cycle_start")
        try:
            return Principal(
                account=account,
                plan=plan,
                key=request.arg("key") or None,
                groups=groups,
                cycle_start=_when(start) if start else None,
            )
        except (ValidationError, ValueError) as exc:
            raise HttpError(422, f"bad principal: {exc}", "invalid_principal") from None

    def known(self) -> list[str]:
        """The account ids the dashboard lists."""
        listing = self.listing
        if listing is None:
            return []
        found = listing() if callable(listing) else listing
        return sorted({str(a) for a in found})


def _when(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HttpError(
            422,
            f"cycle_start must be an ISO 8601 time like 2026-01-31T10:00:00Z, got {text!r}",
            "invalid_cycle_start",
            param="cycle_start",
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
