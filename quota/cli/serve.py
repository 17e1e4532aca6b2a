"""``quota serve``: a demo gateway (uvicorn) with the stand-in upstream behind the middleware.

uvicorn is an optional extra (``pip install 'quota[server]'``), imported only by ``run``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..asgi.identity import MAX_KEY_LENGTH
from ..asgi.middleware import QuotaMiddleware
from ..asgi.types import ASGIApp, Receive, Scope, Send
from ..backends.urls import redact
from ..catalog import Catalog, Principal
from ..errors import CatalogError, ConfigError
from ..keys import ENV_SECRET, secret_from_env
from ..limiter import AsyncLimiter
from ..metrics import PrometheusMetrics, with_metrics
from ..overrides import plan_of
from .upstream import DEFAULT_MODELS, StandInUpstream

if TYPE_CHECKING:
    from ..admin import Overrides

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BASIC_MODEL = "llama-3.1-8b"


def demo_keys(catalog: Catalog, now: dt.datetime) -> dict[str, Principal]:
    """One key per plan, ``sk-<plan>``, each its own account; cycles and trials start ``now``."""
    return {
        f"sk-{name}": Principal(account=f"demo-{name}", plan=name, cycle_start=now)
        for name in catalog.plans
    }


def load_keys(path: str | Path, catalog: Catalog) -> dict[str, Principal]:
    """API keys from a TOML or JSON file: ``{key: {account, plan, cycle_start?, groups?,
    overrides?}}``, at the top level or under ``keys``. ConfigError naming the file and the
    entry on any problem (overrides are checked against the plan)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data: Any = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"keys file '{path}': {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("keys"), dict):
        data = data["keys"]
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"keys file '{path}': expected a table of API key -> account entries")
    keys: dict[str, Principal] = {}
    for key, entry in data.items():
        shown = f"{key[:6]}..." if len(key) > 8 else key
        where = f"keys file '{path}', key {shown!r}"
        if not 0 < len(key) <= MAX_KEY_LENGTH or not all(0x21 <= ord(c) <= 0x7E for c in key):
            raise ConfigError(f"{where}: a key must be 1 to {MAX_KEY_LENGTH} visible ASCII chars")
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected a table with account and plan")
        fields = dict(entry)
        start = fields.get("cycle_start")
        if isinstance(start, dt.date) and not isinstance(start, dt.datetime):
            start = dt.datetime(start.year, start.month, start.day)
        if isinstance(start, dt.datetime) and start.tzinfo is None:
            fields["cycle_start"] = start.replace(tzinfo=dt.timezone.utc)
        try:
            who = Principal(**fields, key=key)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if who.plan not in catalog.plans:
            known = ", ".join(sorted(catalog.plans))
            raise ConfigError(f"{where}: unknown plan {who.plan!r}; this catalog has: {known}")
        try:
            plan_of(catalog, who)  # overrides (a custom deal) checked against the plan
        except CatalogError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        keys[key] = who
    return keys


class Gateway:
    """The served app: the middleware around the stand-in upstream, with its own ``/stats``
    and ``/validate`` views on; closes the limiter at lifespan shutdown. With ``metrics`` (the
    limiter's observer), ``/metrics`` answers its Prometheus exposition, outside the
    middleware (no key, never charged)."""

    def __init__(
        self,
        limiter: AsyncLimiter,
        keys: Mapping[str, Principal],
        metrics: PrometheusMetrics | None = None,
        admin_token: str | None = None,
    ) -> None:
        catalog = limiter.catalog
        models = [m for m in catalog.models if not any(c in m for c in "*?[")]
        upstream = StandInUpstream([*models, BASIC_MODEL] if models else DEFAULT_MODELS)
        self.limiter = limiter
        self.keys = dict(keys)
        self.admin, self.overrides = admin_app(limiter, self.keys, admin_token)
        self.app: ASGIApp = QuotaMiddleware(
            upstream, limiter=limiter, resolve=self.resolve, views=True, models=upstream.models
        )
        if self.overrides is not None:  # a changed deal applies from the next request
            self.overrides.subscribe(self.forget)
        if metrics is not None:
            self.app = with_metrics(self.app, metrics.registry)

    def forget(self, account: str) -> None:
        """Drop the account's keys from the middleware's key cache (its deal changed)."""
        if isinstance(self.app, QuotaMiddleware):
            for key, who in self.keys.items():
                if who.account == account:
                    self.app.keys.invalidate(key)

    def resolve(self, key: str) -> Principal | None:
        """The keys file's principal of ``key``, with the admin app's overrides laid over."""
        who = self.keys.get(key)
        return who if who is None or self.overrides is None else self.overrides.apply(who)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if self.admin is not None and (path == "/admin" or path.startswith("/admin/")):
            root = scope.get("root_path", "") + "/admin"
            await self.admin({**scope, "root_path": root}, receive, send)
            return
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.limiter.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def admin_app(
    limiter: AsyncLimiter, keys: Mapping[str, Principal], token: str | None
) -> tuple[ASGIApp | None, Overrides | None]:
    """The admin app (``quota.admin``) for ``--admin-token``, resolving the keys file's accounts
    (an account's first key), and the override store it writes; (None, None) without a token."""
    if not token:
        return None, None
    from ..admin import Overrides, app

    store = Overrides()
    accounts: dict[str, Principal] = {}
    for key, who in keys.items():  # with its key, so the per-key limits show too
        accounts.setdefault(who.account, who if who.key else who.model_copy(update={"key": key}))
    return app(limiter, token=token, resolve=accounts, overrides=store), store


def banner(
    catalog: Catalog,
    backend: str,
    keys: Mapping[str, Principal],
    url: str,
    demo: bool,
    metrics: bool = False,
    admin: bool = False,
) -> str:
    """What ``quota serve`` prints before it starts: the keys and a request to try."""
    lines = [f"quota serve: catalog {catalog.name!r}, storage {redact(backend)}, at {url}"]
    if metrics:
        lines.append(f"Prometheus metrics at {url}/metrics")
    if admin:
        lines.append(f"admin API and dashboard at {url}/admin/ (open {url}/admin/?token=...)")
    if demo:
        lines.append("demo keys (one account per plan):")
        width = max(len(k) for k in keys)
        lines += [f"  {k:<{width}}  plan {p.plan}" for k, p in keys.items()]
    else:
        lines.append(f"{len(keys)} keys from the keys file")
    key = next(iter(keys))
    lines += [
        "try:",
        f"  curl {url}/v1/chat/completions -H 'Authorization: Bearer {key if demo else '<key>'}'"
        f' -H \'Content-Type: application/json\' -d \'{{"model": "{BASIC_MODEL}",'
        ' "messages": [{"role": "user", "content": "hello"}]}\' -i',
    ]
    return "\n".join(lines)


def hashing_secret() -> tuple[bytes, str]:
    """The secret that keys the stored names (``quota.keys``), and a line saying where it came
    from (never the secret itself): ``$QUOTA_SECRET`` when set (ConfigError when it is too
    short), else a random one for this run only."""
    if ENV_SECRET in os.environ:
        return secret_from_env(), f"quota serve: hashing secret from ${ENV_SECRET}"
    return secrets.token_bytes(32), (
        f"quota serve: ${ENV_SECRET} is not set: a random hashing secret for this run (what it"
        f" stores cannot be found by another run or by `quota usage`; export {ENV_SECRET} to"
        " keep it)"
    )


def run(
    catalog_source: str,
    backend: str,
    keys_file: str | None,
    host: str,
    port: int,
    metrics: bool = False,
    admin_token: str | None = None,
) -> int:
    """Serve until interrupted; ConfigError when uvicorn (or, with ``metrics``,
    prometheus-client) is missing or an input is bad (``$QUOTA_SECRET`` too short, say)."""
    try:
        import uvicorn
    except ImportError:
        raise ConfigError(
            "quota serve needs uvicorn: pip install 'quota[server]' (or pip install uvicorn)"
        ) from None
    catalog = Catalog.load(catalog_source)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    keys = load_keys(keys_file, catalog) if keys_file else demo_keys(catalog, now)
    secret, said = hashing_secret()
    observer = None
    if metrics:
        observer = PrometheusMetrics()  # the global registry: process metrics come along
    limiter = AsyncLimiter(catalog, backend, observer=observer, secret=secret)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    print(said, file=sys.stderr, flush=True)
    admin = bool(admin_token)
    print(banner(catalog, backend, keys, url, keys_file is None, metrics, admin), flush=True)
    app = Gateway(limiter, keys, observer, admin_token)
    config = uvicorn.Config(app, host=host, port=port, log_level="info")
    uvicorn.Server(config).run()
    sys.stdout.flush()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """``quota serve``: ``run`` with the parsed options."""
    token = args.admin_token or os.environ.get("QUOTA_ADMIN_TOKEN") or None
    return run(args.catalog, args.backend, args.keys, args.host, args.port, args.metrics, token)
