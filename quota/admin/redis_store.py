"""``RedisOverrides``: the admin app's overrides in Redis, for a fleet of gateways.

Every gateway process and the admin app build one on the same storage URL as their limiter
(``RedisOverrides.from_url("redis://10.0.0.5:6379/0")``; Sentinel, Cluster and TLS URLs
alike); the gateways resolve keys through ``store.resolver(...)``. Each account's overrides
are one hash, ``<prefix>:admin:o:<sha256 of the account>`` (the account id itself is not
stored in a key name), a field per limit holding its value as JSON. A gateway sees a change
when its key cache next asks (``QuotaMiddleware(key_ttl=...)``, 60 s by default); the process
that made it, at once (``subscribe``). redis-py is needed (``quota[redis]``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .overrides import Overrides, Value


class RedisOverrides(Overrides):
    """Overrides by account and limit name in Redis (a blocking redis-py client; the admin
    app and the resolver call it from a worker thread)."""

    blocking = True

    def __init__(self, client: Any, prefix: str = "quota") -> None:
        super().__init__()
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str) -> RedisOverrides:
        """A store on the Redis a limiter's storage URL names (its ``prefix=`` too)."""
        from ..backends.redis.connect import parse, sync_client

        target = parse(url)
        return cls(sync_client(target), target.prefix)

    def key(self, account: str) -> str:
        digest = hashlib.sha256(account.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return f"{self.prefix}:admin:o:{digest}"

    def get(self, account: str) -> dict[str, Value]:
        raw = self.client.hgetall(self.key(account))
        return {_text(k): json.loads(v) for k, v in raw.items()}

    def set(self, account: str, limit: str, value: Value) -> None:
        self.client.hset(self.key(account), limit, json.dumps(value, separators=(",", ":")))
        self._changed(account)

    def clear(self, account: str, limit: str | None = None) -> bool:
        key = self.key(account)
        found = self.client.delete(key) if limit is None else self.client.hdel(key, limit)
        if found:
            self._changed(account)
        return bool(found)

    def close(self) -> None:
        self.client.close()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
