"""How the Redis engine's calls reach the server, once for blocking and asyncio clients.

Work that talks to Redis is written as a generator (a *flow*): it yields what to send and
receives the reply, or has the server's error raised at its ``yield``. ``drive`` runs a flow
on a blocking client, ``drive_async`` on an asyncio one, and the auto-batcher runs many side by
side in pipelines, so each piece of logic is written once whatever runs it.

``evaluate`` is the one place a script is called: by SHA, then, when the server answers
NOSCRIPT (a restart, a failover, ``SCRIPT FLUSH``), by its full text, which reloads it on that
node. Failures of redis-py surface as ``quota.BackendError``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

from ...errors import BackendError, ConfigError

try:
    from redis.exceptions import NoScriptError, RedisClusterException, RedisError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigError(
        "the Redis engine needs redis-py: install the extra with pip install 'quota[redis]'"
    ) from exc
from .codec import Arg, Command, Script

#: What a failing server raises through redis-py (a Cluster that cannot be reached raises
#: RedisClusterException, which is not a RedisError).
ERRORS = (RedisError, RedisClusterException, OSError)

Sent = TypeVar("Sent")
Result = TypeVar("Result")

__all__ = ["ERRORS", "advance", "backend_error", "drive", "drive_async", "evaluate"]


def backend_error(exc: BaseException) -> BackendError:
    """A redis-py failure as the error quota's callers catch."""
    return BackendError(f"redis: {type(exc).__name__}: {exc}")


def evaluate(script: Script, keys: list[str], args: list[Arg]) -> Generator[Command, Any, Any]:
    """One call of ``script``: EVALSHA, and EVAL of its text when the server lacks it."""
    try:
        return (yield ("EVALSHA", script.sha, len(keys), *keys, *args))
    except NoScriptError:
        return (yield ("EVAL", script.text, len(keys), *keys, *args))


def advance(flow: Generator[Sent, Any, Any], reply: Any) -> Sent:
    """Hand ``reply`` to ``flow`` (raised at its ``yield`` when it is a server error) and
    return what it sends next; StopIteration carries its result when it is done."""
    if isinstance(reply, BaseException):
        return flow.throw(reply)
    return flow.send(reply)


def drive(flow: Generator[Sent, Any, Result], send: Callable[[Sent], Any]) -> Result:
    """Run ``flow`` to its result on a blocking ``send``; redis-py errors the flow does not
    handle become BackendError."""
    reply: Any = None  # the first send(None) starts the flow
    try:
        while True:
            sent = advance(flow, reply)
            try:
                reply = send(sent)
            except ERRORS as exc:
                reply = exc
    except StopIteration as stop:
        result: Result = stop.value
        return result
    except ERRORS as exc:
        raise backend_error(exc) from exc


async def drive_async(
    flow: Generator[Sent, Any, Result], send: Callable[[Sent], Awaitable[Any]]
) -> Result:
    """``drive`` for an asyncio ``send``."""
    reply: Any = None
    try:
        while True:
            sent = advance(flow, reply)
            try:
                reply = await send(sent)
            except ERRORS as exc:
                reply = exc
    except StopIteration as stop:
        result: Result = stop.value
        return result
    except ERRORS as exc:
        raise backend_error(exc) from exc
