"""The timeout budget of a shared store's calls: socket timeouts written into a Redis storage
URL (sync calls), ``asyncio.timeout`` around a coroutine (async calls), and the check of the
limiter's ``timeout`` argument."""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import ConfigError

__all__ = ["bounded", "check_timeout", "with_timeout"]

_STORE_SCHEMES = ("redis", "rediss", "valkey", "valkeys")


def with_timeout(url: str, timeout: float | None) -> str:
    """``url`` with socket timeouts of ``timeout`` seconds unless it sets its own (Redis
    schemes only; other engines are left alone)."""
    scheme = url.split("://", 1)[0].lower().split("+", 1)[0]
    if timeout is None or scheme not in _STORE_SCHEMES:
        return url
    query = url.partition("?")[2]
    names = {part.split("=", 1)[0] for part in query.split("&") if part}
    extra = [
        f"{k}={timeout!r}" for k in ("socket_timeout", "socket_connect_timeout") if k not in names
    ]
    if not extra:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(extra)


_TIMEOUT: Any = getattr(asyncio, "timeout", None)  # Python >= 3.11: no task per call


async def bounded(coro: Any, seconds: float | None) -> Any:
    """Await ``coro`` for at most ``seconds`` (TimeoutError after cancelling it)."""
    if seconds is None:
        return await coro
    if _TIMEOUT is not None:
        async with _TIMEOUT(seconds):
            return await coro
    return await asyncio.wait_for(coro, seconds)


def check_timeout(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ConfigError(f"timeout must be positive seconds or None, got {timeout!r}")
    return float(timeout)
