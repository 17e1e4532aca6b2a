"""From a storage URL to a redis-py client: single server, TLS, Unix socket, Sentinel, Cluster.

Schemes (``valkey`` spellings alike): ``redis://``, ``rediss://`` (TLS), ``redis+unix://``,
``redis+sentinel://[:password@]host:port[,host:port...]/service[/db]``,
``redis+cluster://[user:password@]host:port[,host:port...]`` (``rediss+cluster`` for TLS).
Query options go to redis-py (``socket_timeout=0.5``...), except ours: ``prefix`` (key prefix,
default ``quota``) and ``batch`` (asyncio auto-batching, default true).

Error messages quote the URL with its password masked (``quota.backends.urls.redact``), and a
``Target`` does not show its password or URL in its repr.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ...errors import ConfigError
from ..urls import MASK, redact

#: Defaults a limiter needs (a decision must not hang); the URL's query overrides them.
TIMEOUTS = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}


@dataclass
class Target:
    """A parsed storage URL."""

    kind: str  # "single", "cluster" or "sentinel"
    url: str = field(repr=False)  # for "single": the URL redis-py understands (password too)
    nodes: list[tuple[str, int]] = field(default_factory=list)
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    prefix: str = "quota"
    batch: bool = True  # asyncio: coalesce concurrent calls into pipelines
    options: dict[str, Any] = field(default_factory=dict)


def _quote(fragment: str, url: str) -> str:
    """``fragment`` of a URL quoted for a message about ``url`` (already redacted), or
    ``'***'`` when the redacted URL does not show it: a malformed URL (an unencoded ``#`` or
    ``?`` in its password) can cut the password into what looks like a host or an option."""
    return repr(fragment if fragment in url else MASK)


def _nodes(netloc: str, url: str) -> list[tuple[str, int]]:
    """The ``host:port`` list of a netloc; ``url`` (already redacted) is for messages."""
    hosts = netloc.rpartition("@")[2]
    out = []
    for part in hosts.split(","):
        host, _, port = part.rpartition(":") if ":" in part else (part, "", "")
        try:
            out.append((host.strip("[]") or "127.0.0.1", int(port) if port else 6379))
        except ValueError:
            raise ConfigError(f"bad host:port {_quote(part, url)} in storage URL {url!r}") from None
    return out


def _flag(text: str) -> bool:
    if text.lower() not in ("0", "1", "true", "false", "yes", "no"):
        raise ValueError(text)
    return text.lower() in ("1", "true", "yes")


#: Query options passed on to redis-py, with their types; anything else is refused by name.
OPTIONS: dict[str, Any] = {
    "socket_timeout": float,
    "socket_connect_timeout": float,
    "socket_keepalive": _flag,
    "retry_on_timeout": _flag,
    "health_check_interval": float,
    "max_connections": int,
    "client_name": str,
    "protocol": int,
    "db": int,
    "ssl_cert_reqs": str,
    "ssl_ca_certs": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
    "ssl_check_hostname": _flag,
}


def _options(query: str, url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(our options: ``prefix``, ``batch``; redis-py's) from a URL's query; ``url`` (already
    redacted) is for messages."""
    ours: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "prefix":
            if not value or "{" in value or "}" in value:
                raise ConfigError(f"bad key prefix {_quote(value, url)} in storage URL {url!r}")
            ours["prefix"] = value
            continue
        kind = _flag if key == "batch" else OPTIONS.get(key)
        if kind is None:
            known = ", ".join(["prefix", "batch", *OPTIONS])
            raise ConfigError(
                f"unknown option {_quote(key, url)} in storage URL {url!r}; known: {known}"
            )
        try:
            (ours if key == "batch" else options)[key] = kind(value)
        except ValueError:
            raise ConfigError(
                f"bad value {_quote(value, url)} for {key} in storage URL {url!r}"
            ) from None
    return ours, options


def _db(path: str, url: str) -> dict[str, int]:
    """The database number of a ``redis://host/<db>`` path."""
    name = path.strip("/")
    if not name:
        return {}
    if not name.isdigit():
        raise ConfigError(f"bad database number {_quote(name, url)} in storage URL {url!r}")
    return {"db": int(name)}


def parse(url: str) -> Target:
    """Split a storage URL into what a client needs; ConfigError names what is wrong, quoting
    the URL with its password masked."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower().replace("valkey", "redis")
    shown = redact(url)  # what messages quote: never the password
    ours, options = _options(parts.query, shown)
    auth = parts.netloc.rpartition("@")[0]
    user, _, password = auth.partition(":")
    username, secret = (unquote(user) or None), (unquote(password) or None)
    tls = scheme.startswith("rediss")
    if not tls and any(k.startswith("ssl_") for k in options):
        raise ConfigError(f"ssl_* options need a TLS scheme (rediss://...): {shown!r}")
    if scheme in ("redis", "rediss"):
        try:
            parts.port  # noqa: B018 -- validates it
        except ValueError:
            raise ConfigError(f"bad port in storage URL {shown!r}") from None
        options.update(_db(parts.path, shown))
        single = f"{scheme}://{parts.netloc}"
        return Target("single", single, options=TIMEOUTS | options, **ours)
    if scheme == "redis+unix":
        return Target(
            "single", f"unix://{parts.netloc}{parts.path}", options=TIMEOUTS | options, **ours
        )
    if scheme in ("redis+cluster", "rediss+cluster"):
        if options.get("db", 0) != 0 or _db(parts.path, shown).get("db", 0) != 0:
            raise ConfigError(f"Redis Cluster has only database 0: {shown!r}")
        options.pop("db", None)
        return Target(
            "cluster",
            url,
            nodes=_nodes(parts.netloc, shown),
            username=username,
            password=secret,
            tls=tls,
            options=TIMEOUTS | options,
            **ours,
        )
    if scheme == "redis+sentinel":
        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise ConfigError(f"sentinel URL {shown!r} needs a service name: .../<service>[/db]")
        db = options.pop("db", _db(path[1] if len(path) > 1 else "", shown).get("db", 0))
        return Target(
            "sentinel",
            url,
            nodes=_nodes(parts.netloc, shown),
            service=path[0],
            db=db,
            username=username,
            password=secret,
            options=TIMEOUTS | options,
            **ours,
        )
    raise ConfigError(f"not a Redis storage URL: {shown!r}")


def _takes_maint_notifications() -> bool:
    """Whether redis-py's asyncio connections accept ``maint_notifications_config`` (some 7.x
    releases do; 7.4 refuses it with a TypeError on the first connection)."""
    try:
        from redis.asyncio.connection import AbstractConnection
        from redis.maint_notifications import MaintNotificationsConfig  # noqa: F401
    except ImportError:  # pragma: no cover - older redis-py
        return False
    return "maint_notifications_config" in inspect.signature(AbstractConnection.__init__).parameters


def hiredis_packing(cls: type) -> type:
    """``cls`` packing commands with hiredis (C) when it is installed.

    redis-py's blocking connections pack with hiredis, its asyncio ones in Python, one argument
    at a time: a decision's script call has dozens of arguments and a batch thousands, so that
    loop was the asyncio engine's largest cost."""
    try:
        import hiredis
    except ImportError:  # pragma: no cover - the [redis] extra installs it
        return cls
    pack = getattr(hiredis, "pack_command", None)
    if pack is None:  # pragma: no cover - hiredis < 2.1
        return cls

    def pack_command(self: Any, *args: Any) -> list[bytes]:
        # As redis-py's HiredisRespSerializer: "SCRIPT LOAD" is two arguments.
        if isinstance(args[0], str):
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        return [pack(args)]

    return type(f"Hiredis{cls.__name__}", (cls,), {"pack_command": pack_command})


def _build(
    target: Target, single: Any, cluster: Any, node: Any, sentinel: Any, pool: Any = None
) -> Any:
    opts = {"decode_responses": True, **target.options}
    if target.kind == "single":
        if pool is None:
            return single.from_url(target.url, **opts)
        opts.setdefault("max_connections", 64)
        opts.setdefault("timeout", opts.get("socket_timeout"))
        if _takes_maint_notifications():  # redis-py 7.x versions whose asyncio connections
            # take it: without it the pool keeps a dead connection after a server restart
            from redis.maint_notifications import MaintNotificationsConfig

            opts["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
        connections = pool.from_url(target.url, **opts)
        connections.connection_class = hiredis_packing(connections.connection_class)
        return single(connection_pool=connections)
    if target.kind == "cluster":
        return cluster(
            startup_nodes=[node(h, p) for h, p in target.nodes],
            username=target.username,
            password=target.password,
            ssl=target.tls,
            **opts,
        )
    watch = sentinel(
        target.nodes, sentinel_kwargs=_sentinel_options(target, opts, sentinel), **opts
    )
    return watch.master_for(
        target.service, db=target.db, username=target.username, password=target.password
    )


def _sentinel_options(target: Target, opts: dict[str, Any], sentinel: Any) -> dict[str, Any]:
    """How the Sentinels themselves are asked: the password, the URL's socket timeouts, and
    no retry with backoff (redis-py's default retries a dead Sentinel for seconds per call,
    far past any timeout budget; the next Sentinel of the list is the retry)."""
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    flavour = AsyncRetry if sentinel.__module__.startswith("redis.asyncio") else Retry
    out: dict[str, Any] = {"password": target.password, "retry": flavour(NoBackoff(), 0)}
    for name in ("socket_timeout", "socket_connect_timeout"):
        if opts.get(name) is not None:
            out[name] = opts[name]
    return out


def sync_client(target: Target) -> Any:
    """A blocking redis-py client (``decode_responses``) for ``target``."""
    import redis
    from redis.cluster import ClusterNode, RedisCluster
    from redis.sentinel import Sentinel

    return _build(target, redis.Redis, RedisCluster, ClusterNode, Sentinel)


def async_client(target: Target) -> Any:
    """An asyncio redis-py client for ``target``."""
    import redis.asyncio as aredis
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.asyncio.sentinel import Sentinel

    # Callers beyond the pool's connections wait for one (the default pool would fail them).
    pool = aredis.BlockingConnectionPool
    return _build(target, aredis.Redis, RedisCluster, ClusterNode, Sentinel, pool)
