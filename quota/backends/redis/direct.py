"""Script calls sent on a plain Redis client's own connections, past redis-py's per-command layers.

redis-py wraps every command in a pool checkout (with a non-blocking ``recv`` probe of the
connection), a retry wrapper and observability hooks: about a third of a bare round trip on
loopback. A decision is one script call whose reply needs no parsing callback, so the blocking
engine sends FCALL, EVALSHA and EVAL through ``Direct`` instead: connections made by the
client's own pool (its host, password, TLS and socket timeouts), kept in a list of idle ones
(``list.pop``/``append`` are atomic, so threads share it safely), the command packed and the
reply read with redis-py's own connection methods. Nothing here speaks the protocol itself.

What is kept of redis-py's behaviour: a connection found dead when taken from the idle list
(the server closed it, restarted, or failed over) is replaced and the command sent once more,
since a server that closed the connection before the command arrived did not run it; a
timeout is never retried (the limiter's timeout budget stays one socket timeout); a connection
that failed is disconnected, never reused; after ``fork`` the child starts with no connection.
Only a client that is exactly ``redis.Redis`` over exactly ``redis.ConnectionPool`` qualifies
(``Direct.fits``): Sentinel, Cluster, a blocking pool or a single-connection client keep
redis-py's path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from redis import ConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

__all__ = ["SCRIPTED", "Direct", "ResponseError"]

#: The commands sent directly: script calls, whose replies redis-py does not post-process.
SCRIPTED = frozenset({"FCALL", "EVALSHA", "EVAL"})


def _packer() -> Callable[[tuple[Any, ...]], Any] | None:
    """hiredis's packer (what redis-py's blocking connections use), called without redis-py's
    wrapper; None without hiredis (then each connection packs)."""
    try:
        from hiredis import pack_command
    except ImportError:  # pragma: no cover - the [redis] extra installs hiredis
        return None
    return pack_command


class Direct:
    """Send script calls on connections of ``client``'s pool, outside its checkout."""

    def __init__(self, client: Any) -> None:
        self.pool: ConnectionPool = client.connection_pool
        self.idle: list[Any] = []
        self.pid = os.getpid()
        self.pack = _packer()

    @staticmethod
    def fits(client: Any) -> bool:
        """Whether ``client`` is a plain client whose commands may be sent directly."""
        return (
            type(client) is Redis
            and type(client.connection_pool) is ConnectionPool
            and getattr(client, "connection", None) is None  # no single-connection client
        )

    def __call__(self, command: tuple[Any, ...]) -> Any:
        if self.pid != os.getpid():  # a forked child: its parent's sockets are not its own
            self.idle = []
            self.pid = os.getpid()
        try:
            conn = self.idle.pop()
        except IndexError:
            return self._send(self.pool.make_connection(), command)
        try:
            return self._send(conn, command)
        except RedisConnectionError:  # dead while idle: the server never saw the command
            return self._send(self.pool.make_connection(), command)

    def _send(self, conn: Any, command: tuple[Any, ...]) -> Any:
        """One command on ``conn``: back to the idle list after a reply (an error reply
        included), disconnected after any other failure."""
        try:
            packed = conn.pack_command(*command) if self.pack is None else [self.pack(command)]
            conn.send_packed_command(packed, check_health=False)
            reply = conn.read_response()
        except ResponseError:
            self.idle.append(conn)
            raise
        except BaseException:
            conn.disconnect()
            raise
        self.idle.append(conn)
        return reply

    def close(self) -> None:
        """Disconnect every idle connection."""
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.disconnect()
