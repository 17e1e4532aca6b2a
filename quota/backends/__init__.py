"""Storage engines, chosen by URL scheme as users of ``limits`` expect.

``register(scheme, "module:Factory")`` adds a scheme; the module is imported only when a URL
uses it, so optional engines (Redis) cost nothing to the core install.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError
from .base import AsyncBackend, Backend, Op, Verdict
from .urls import redact

_SYNC: dict[str, str] = {}
_ASYNC: dict[str, str] = {}


def register(scheme: str, sync: str, asynchronous: str | None = None) -> None:
    """Map a URL scheme to ``"module:Class"`` factories with a ``from_url(url)`` classmethod."""
    _SYNC[scheme] = sync
    if asynchronous is not None:
        _ASYNC[scheme] = asynchronous


def schemes() -> list[str]:
    """Every registered URL scheme."""
    return sorted(_SYNC)


def _factory(url: str, table: dict[str, str]) -> Any:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    target = table.get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in schemes())
        raise ConfigError(f"unknown storage URL {redact(url)!r}; supported schemes: {known}")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def open_backend(url: str) -> Backend:
    """A synchronous engine for ``url`` (``memory://``, ...)."""
    backend: Backend = _factory(url, _SYNC).from_url(url)
    return backend


def open_async_backend(url: str) -> AsyncBackend:
    """An asyncio engine for ``url``."""
    backend: AsyncBackend = _factory(url, _ASYNC).from_url(url)
    return backend


register(
    "memory", "quota.backends.memory:MemoryBackend", "quota.backends.memory:AsyncMemoryBackend"
)
for _scheme in (
    "redis",
    "rediss",
    "redis+unix",
    "redis+sentinel",
    "redis+cluster",
    "rediss+cluster",
    "valkey",
    "valkeys",
    "valkey+unix",
    "valkey+sentinel",
    "valkey+cluster",
    "valkeys+cluster",
):
    register(_scheme, "quota.backends.redis:RedisBackend", "quota.backends.redis:AsyncRedisBackend")

__all__ = [
    "AsyncBackend",
    "Backend",
    "Op",
    "Verdict",
    "open_async_backend",
    "open_backend",
    "redact",
    "register",
    "schemes",
]
