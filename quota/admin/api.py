"""What the admin API does with the limiter: read an account (its limits, balance and history),
top it up, reset it, and set or clear its overrides. Each change is logged on the
``quota.admin`` logger with who asked (the token's label and the client's address) and what.

Errors of the caller's input answer 422 in the library's own words (an override is checked as
a plan file is); a store that fails answers 503.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections.abc import Callable
from typing import Any

from ..backends.memory import MemoryBackend
from ..catalog import Principal
from ..errors import BackendError, QuotaError
from ..frozen import thaw
from ..limiter import AsyncLimiter, Limiter
from ..views import history_days, stats_body
from .accounts import Accounts
from .http import HttpError
from .overrides import check

log = logging.getLogger("quota.admin")

JSON = dict[str, Any]
MAX_SAFE = 2**53 - 1


class Api:
    """The limiter calls behind the admin routes (sync or async limiter alike)."""

    def __init__(self, limiter: AsyncLimiter | Limiter, accounts: Accounts) -> None:
        self.limiter = limiter
        self.catalog = limiter.catalog
        self.accounts = accounts
        # A sync limiter on a network store blocks: run it in a thread (as the middleware does).
        self.offload = isinstance(limiter, Limiter) and not isinstance(
            limiter.backend, MemoryBackend
        )

    async def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A limiter method, awaited or called; its QuotaErrors as HTTP errors."""
        try:
            if isinstance(self.limiter, AsyncLimiter):
                return await method(*args, **kwargs)
            if self.offload:
                return await asyncio.to_thread(method, *args, **kwargs)
            return method(*args, **kwargs)
        except BackendError:
            log.exception("quota admin: the store failed")
            raise HttpError(
                503,
                "the quota store is unavailable",
                "quota_unavailable",
                headers={"Retry-After": "1"},
            ) from None
        except QuotaError as exc:
            raise HttpError(422, str(exc), "invalid_request") from None

    async def account(self, who: Principal) -> JSON:
        """The account's plan, limits (used, left, reset), balances and recent history."""
        now = self.limiter.clock()
        states = await self.call(self.limiter.peek, who)
        days = history_days(self.catalog)
        usage = await self.call(self.limiter.usage, who, days=days) if days else None
        body = stats_body(self.catalog, who, now, states, usage)
        body["object"] = "account"
        body["account"] = who.account
        body["groups"] = dict(who.groups)
        body["overrides"] = thaw(who.overrides)
        return body

    async def usage(self, who: Principal, days: int) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = await self.call(self.limiter.usage, who, days=days)
        return result

    async def top_up(self, who: Principal, body: JSON, by: str) -> JSON:
        meter = _field(body, "meter", str)
        amount = _field(body, "amount", int)
        if not 0 < amount <= MAX_SAFE:
            raise HttpError(
                422, "amount must be from 1 to 2**53-1", "invalid_amount", param="amount"
            )
        balance = await self.call(self.limiter.top_up, who, meter, amount)
        log.info(
            "admin %s: top-up account=%r meter=%r amount=%d -> balance %d",
            by, who.account, meter, amount, balance,
        )  # fmt: skip
        return {"object": "top_up", "account": who.account, "meter": meter, "balance": balance}

    async def reset(self, who: Principal, body: JSON, by: str) -> JSON:
        include_balance = _field(body, "include_balance", bool, False)
        include_groups = _field(body, "include_groups", bool, False)
        await self.call(
            self.limiter.reset,
            who,
            include_balance=include_balance,
            include_groups=include_groups,
        )
        log.info(
            "admin %s: reset account=%r include_balance=%s include_groups=%s",
            by, who.account, include_balance, include_groups,
        )  # fmt: skip
        return {
            "object": "reset",
            "account": who.account,
            "include_balance": include_balance,
            "include_groups": include_groups,
        }

    def overrides(self, who: Principal) -> JSON:
        return {"object": "overrides", "account": who.account, "overrides": thaw(who.overrides)}

    async def set_override(self, who: Principal, limit: str, body: JSON, by: str) -> JSON:
        """Check the account's overrides with this one set (422 in a plan file's words), then
        store it."""
        if "value" not in body:
            raise HttpError(422, "the body needs 'value'", "missing_field", param="value")
        value = body["value"]
        if not isinstance(value, str | dict):
            raise HttpError(
                422, "value must be a rate string or an object of limit fields", "invalid_value",
                param="value",
            )  # fmt: skip
        try:
            merged = check(self.catalog, who, limit, value)
        except QuotaError as exc:
            raise HttpError(422, str(exc), "invalid_override", param="value") from None
        store = self.accounts.overrides
        await store.run(store.set, who.account, limit, value)
        log.info("admin %s: override account=%r limit=%r value=%r", by, who.account, limit, value)
        return {"object": "overrides", "account": who.account, "overrides": merged}

    async def clear_override(self, who: Principal, limit: str | None, by: str) -> JSON:
        store = self.accounts.overrides
        found = await store.run(store.clear, who.account, limit)
        what = "every override" if limit is None else f"override limit={limit!r}"
        log.info("admin %s: clear %s of account=%r (found: %s)", by, what, who.account, found)
        left = await store.run(store.get, who.account)
        return {"object": "overrides", "account": who.account, "overrides": thaw(left)}

    async def nearest(self, count: int) -> list[JSON]:
        """The known accounts by how full their fullest limit is, fullest first."""
        rows: list[JSON] = []
        for account in self.accounts.known():
            who = await self.accounts.resolved(account)
            if who is None:
                continue
            try:
                who = await self.accounts.overrides.aapply(who)
                states = await self.call(self.limiter.peek, who)
            except HttpError as exc:  # one account's trouble does not hide the others
                rows.append({"account": account, "plan": who.plan, "error": exc.message})
                continue
            rows.append(_fullest(account, who.plan, states))
        rows.sort(key=lambda r: (-(r.get("fraction_used") or 0.0), r["account"]))
        return rows[:count]


def _fullest(account: str, plan: str, states: list[Any]) -> JSON:
    windowed = [s for s in states if s.algorithm != "balance" and s.limit > 0]
    row: JSON = {"account": account, "plan": plan, "limit": None, "fraction_used": 0.0}
    if windowed:
        top = max(windowed, key=lambda s: (s.limit - s.remaining) / s.limit)
        used = max(0, top.limit - top.remaining)
        row.update(
            limit=top.name, used=used, max=top.limit, fraction_used=round(used / top.limit, 4)
        )
    return row


def usage_csv(usage: dict[str, dict[str, int]]) -> str:
    """The daily history as CSV: a ``day`` column, then one column per meter."""
    meters = list(next(iter(usage.values()), {}))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["day", *meters])
    for day, totals in usage.items():
        writer.writerow([day, *(totals.get(m, 0) for m in meters)])
    return out.getvalue()


def _field(body: JSON, name: str, kind: type, default: Any = ...) -> Any:
    """``body[name]`` of type ``kind`` (a bool is not an int); 422 when missing or wrong."""
    if name not in body:
        if default is ...:
            raise HttpError(422, f"the body needs {name!r}", "missing_field", param=name)
        return default
    value = body[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise HttpError(422, f"{name} must be a {kind.__name__}", "invalid_field", param=name)
    return value
