"""How the Redis engine's calls reach the server, once for blocking and asyncio clients.

Work that talks to Redis is written as a generator (a *flow*): it yields what to send and
receives the reply, or has the server's error raised at its ``yield``. ``drive`` runs a flow
on a blocking client, ``drive_async`` on an asyncio one, and the auto-batcher runs many side by
side in pipelines, so each piece of logic is written once whatever runs it.

``evaluate`` is the one place a script is called: by SHA, then, when the server answers
NOSCRIPT (a restart, a failover, ``SCRIPT FLUSH``), by its full text, which reloads it on that
node. ``invoke`` sends the acquire of a decision without a request id (``FAST``) to the
function library instead, where the server has it: FCALL, then, on "Function not found" (a
restart, ``FUNCTION FLUSH``), ``FUNCTION LOAD`` and FCALL once more. Where functions are missing
(Redis 6, an emulator) or refused (ACL), it falls back to the script for good (``Functions``
remembers it per client). Failures of redis-py surface as ``quota.BackendError``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

from ...errors import BackendError, ConfigError

try:
    from redis.exceptions import (
        ClusterDownError,
        NoPermissionError,
        NoScriptError,
        OutOfMemoryError,
        ReadOnlyError,
        RedisClusterException,
        RedisError,
        ResponseError,
        TryAgainError,
    )
    from redis.exceptions import (
        ConnectionError as RedisConnectionError,
    )
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigError(
        "the Redis engine needs redis-py: install the extra with pip install 'quota[redis]'"
    ) from exc
from .codec import ENGINE, FAST, LIBRARY, Arg, Command, Script

#: What a failing server raises through redis-py (a Cluster that cannot be reached raises
#: RedisClusterException, which is not a RedisError).
ERRORS = (RedisError, RedisClusterException, OSError)
#: What redis-py retries on a command it routes itself (not on one sent to a given node).
RETRIED = (RedisConnectionError, RedisTimeoutError)

Sent = TypeVar("Sent")
Result = TypeVar("Result")

__all__ = [
    "ERRORS",
    "RETRIED",
    "Functions",
    "advance",
    "backend_error",
    "drive",
    "drive_async",
    "evaluate",
    "fcall",
    "invoke",
    "lost",
    "recover",
]

#: Replies that say the server takes no writes now: the call fails, as a script call would.
_TRANSIENT = (OutOfMemoryError, ReadOnlyError, TryAgainError, ClusterDownError)


def backend_error(exc: BaseException) -> BackendError:
    """A redis-py failure as the error quota's callers catch."""
    return BackendError(f"redis: {type(exc).__name__}: {exc}")


def evaluate(script: Script, keys: list[str], args: list[Arg]) -> Generator[Command, Any, Any]:
    """One call of ``script``: EVALSHA, and EVAL of its text when the server lacks it."""
    try:
        return (yield ("EVALSHA", script.sha, len(keys), *keys, *args))
    except NoScriptError:
        return (yield ("EVAL", script.text, len(keys), *keys, *args))


class Functions:
    """Whether this client's server runs the function library: None until a call tells."""

    def __init__(self) -> None:
        self.usable: bool | None = None


def _refused(exc: ResponseError) -> bool:
    """The server has no functions (Redis 6: unknown command) or the user may not call or
    load them (ACL): a refusal that lasts."""
    text = str(exc).lower()
    if isinstance(exc, NoPermissionError):
        return "'fcall'" in text or "'function" in text
    return text.startswith(("unknown command", "unknown subcommand"))


def lost(exc: ResponseError) -> bool:
    """The FCALL failed for want of the library: not loaded (a restart, ``FUNCTION FLUSH``)
    or not callable (``_refused``); ``invoke`` loads it or falls back to the script."""
    return _refused(exc) or "function not found" in str(exc).lower()


def _load() -> Generator[Command, Any, bool]:
    """Load the library (REPLACE: a concurrent load of the same library is no error); False
    when the server will not take it (then the call falls back to the script)."""
    try:
        yield ("FUNCTION", "LOAD", "REPLACE", LIBRARY.text)
    except ResponseError as exc:
        if isinstance(exc, _TRANSIENT) or str(exc).startswith("BUSY"):
            raise
        return False
    return True


def invoke(functions: Functions, keys: list[str], args: list[Arg]) -> Generator[Command, Any, Any]:
    """One call: a ``FAST`` acquire as FCALL of the library where usable, else ``evaluate``."""
    if args[0] != FAST or functions.usable is False:
        return (yield from evaluate(ENGINE, keys, args))
    try:
        reply = yield fcall(keys, args)
    except ResponseError as exc:
        if not lost(exc):
            raise
        return (yield from recover(functions, keys, args, exc))
    functions.usable = True
    return reply


def fcall(keys: list[str], args: list[Arg]) -> Command:
    """The FCALL of a ``FAST`` acquire's keys and arguments."""
    return ("FCALL", LIBRARY.function, len(keys), *keys, *args[1:])


def recover(
    functions: Functions, keys: list[str], args: list[Arg], exc: ResponseError
) -> Generator[Command, Any, Any]:
    """The call after its FCALL failed for want of the library (``lost``): load it and FCALL
    again, or the script where functions are refused (for good) or flushed again since the
    load (this once)."""
    if _refused(exc) or not (yield from _load()):
        functions.usable = False
        return (yield from evaluate(ENGINE, keys, args))
    try:
        reply = yield fcall(keys, args)
    except ResponseError as again:
        if not lost(again):
            raise
        return (yield from evaluate(ENGINE, keys, args))
    functions.usable = True
    return reply


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
