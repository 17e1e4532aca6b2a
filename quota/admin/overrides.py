"""Per-account overrides the admin app sets, and the gateway's resolver applies.

An override is data about a principal (``Principal(overrides=...)``, see ``quota.overrides``):
the admin app cannot change what a gateway's own resolver returns, so it keeps the overrides it
sets in an ``Overrides`` store, and the gateway resolves keys through ``store.resolver(...)``,
which lays the stored overrides over those its principal already carries. The store is in
memory (one gateway process: ``quota serve``, a single worker); subscribers hear of each change
(``quota serve`` forgets the account's keys in the middleware's key cache, so the next request
sees the new deal at once).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from ..catalog import Catalog, Principal
from ..errors import CatalogError
from ..frozen import thaw
from ..overrides import apply

Value = str | Mapping[str, Any]
T = TypeVar("T")
KeyResolver = Callable[[str], "Principal | Awaitable[Principal | None] | None"]


class Overrides:
    """Overrides by account and limit name, in memory and thread-safe. ``RedisOverrides``
    keeps them in Redis instead, for a fleet of gateways."""

    #: Whether ``get``/``set``/``clear`` do I/O: the async callers then run them in a thread.
    blocking = False

    def __init__(self) -> None:
        self._by_account: dict[str, dict[str, Value]] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str], None]] = []

    def get(self, account: str) -> dict[str, Value]:
        """The account's stored overrides, ``{limit: value}`` (a copy)."""
        with self._lock:
            return dict(self._by_account.get(account, {}))

    def set(self, account: str, limit: str, value: Value) -> None:
        """Store one override (unchecked: ``check`` first, as the admin app does)."""
        with self._lock:
            self._by_account.setdefault(account, {})[limit] = value
        self._changed(account)

    def clear(self, account: str, limit: str | None = None) -> bool:
        """Forget one override of the account (or all of them); whether any was there."""
        with self._lock:
            found = self._by_account.get(account)
            if not found:
                return False
            if limit is None:
                del self._by_account[account]
            elif found.pop(limit, None) is None:
                return False
            elif not found:
                del self._by_account[account]
        self._changed(account)
        return True

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(account)`` after every change of that account's overrides (made
        through this store object)."""
        self._listeners.append(listener)

    def _changed(self, account: str) -> None:
        for listener in self._listeners:
            listener(account)

    def apply(self, who: Principal) -> Principal:
        """``who`` with the stored overrides of its account laid over its own."""
        return _laid(who, self.get(who.account))

    async def run(self, method: Callable[..., T], *args: Any) -> T:
        """``method(*args)``, in a worker thread when the store blocks."""
        if self.blocking:
            return await asyncio.to_thread(method, *args)
        return method(*args)

    async def aapply(self, who: Principal) -> Principal:
        """``apply`` for async callers."""
        return _laid(who, await self.run(self.get, who.account))

    def resolver(self, resolve: KeyResolver) -> Callable[[str], Awaitable[Principal | None]]:
        """A key resolver for ``QuotaMiddleware``: ``resolve``'s principal with the stored
        overrides applied (``resolve`` may be sync or async)."""

        async def lookup(key: str) -> Principal | None:
            found = resolve(key)
            who = await found if inspect.isawaitable(found) else found
            return None if who is None else await self.aapply(who)

        return lookup


def _laid(who: Principal, stored: Mapping[str, Value]) -> Principal:
    return who if not stored else with_overrides(who, {**who.overrides, **stored})


def with_overrides(who: Principal, overrides: Mapping[str, Any]) -> Principal:
    """A copy of ``who`` carrying ``overrides`` (validated and frozen like any principal's)."""
    fields = who.model_dump()
    fields["overrides"] = thaw(overrides)
    return Principal(**fields)


def check(catalog: Catalog, who: Principal, limit: str, value: Value) -> dict[str, Any]:
    """The account's overrides with ``limit`` set to ``value``, checked against its plan as a
    plan file is (CatalogError worded like one: plan, limit, field)."""
    merged = {**thaw(who.overrides), limit: thaw(value)}
    apply(catalog.plan(who.plan), merged, f"the overrides of account {who.account!r}")
    return merged


__all__ = ["CatalogError", "KeyResolver", "Overrides", "check", "with_overrides"]
