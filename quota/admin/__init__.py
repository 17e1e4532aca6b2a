"""The admin API and dashboard: look up, top up, reset and override accounts over HTTP.

``quota.admin.app(limiter, token=...)`` is a pure ASGI app (no framework needed) to mount
beside a gateway, under a path of your choice (``quota serve --admin-token`` mounts it at
``/admin``)::

    admin = quota.admin.app(limiter, token=os.environ["QUOTA_ADMIN_TOKEN"], resolve=accounts)

- ``token``: a string, or ``{label: token}`` so that the ``quota.admin`` log says who did
  what; required, 16 characters at least;
- ``resolve``: how an account id becomes a ``Principal`` (its plan, key, groups): a mapping
  ``{account: Principal}`` or a function ``account -> Principal | None`` (sync or async). An
  account it does not know can still be read with its principal in the query
  (``?plan=go&key=...&group=org=acme``);
- ``accounts``: the account ids the dashboard lists (default: the mapping's keys);
- ``overrides``: the ``Overrides`` store the app writes custom deals to (in memory; or
  ``RedisOverrides.from_url(storage_url)`` for a fleet); give the gateway
  ``overrides.resolver(its_resolver)`` so that its principals carry them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..limiter import AsyncLimiter, Limiter
from .accounts import Accounts, Listing, Resolve
from .app import AdminApp
from .auth import Tokens
from .overrides import Overrides

if TYPE_CHECKING:
    from .redis_store import RedisOverrides

__all__ = ["AdminApp", "Overrides", "RedisOverrides", "app"]


def __getattr__(name: str) -> object:
    """``RedisOverrides`` on first use: its module needs redis-py only when built."""
    if name == "RedisOverrides":
        from .redis_store import RedisOverrides

        return RedisOverrides
    raise AttributeError(f"module 'quota.admin' has no attribute {name!r}")


def app(
    limiter: AsyncLimiter | Limiter,
    *,
    token: str | Mapping[str, str],
    resolve: Resolve | None = None,
    accounts: Listing | None = None,
    overrides: Overrides | None = None,
) -> AdminApp:
    """The admin API and dashboard over ``limiter`` (see the module's documentation);
    ConfigError for a missing or short token."""
    store = overrides if overrides is not None else Overrides()
    return AdminApp(limiter, Tokens(token), Accounts(limiter.catalog, resolve, accounts, store))
