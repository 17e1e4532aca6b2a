"""The blocking Redis engine (the asyncio one is ``asyncio_engine``, sharing ``Shared``): what
a limiter calls, run as ``protocol`` flows.

Every operation is one Lua script call per hash slot, so a decision over any number of limits
is one round trip. The operations themselves are written once, in ``protocol``; each engine
only runs them on its client (``calls.drive`` or ``calls.drive_async``). Scripts are called by
SHA, reloaded on NOSCRIPT; the acquire of a decision without a request id is an FCALL of the
function library where the server has one, loaded when missing (``calls.invoke``). Redis
errors surface as ``quota.BackendError``.
``clock()`` is the server's clock (local time corrected by ``TIME``, measured at first use and
refreshed every minute), which the limiters use by default so that every gateway host agrees
on one time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...algorithms import Charge, Outcome, State
from ...errors import BackendError, ConfigError
from ..base import Op, Verdict
from . import reads
from .calls import (
    ERRORS,
    RETRIED,
    Functions,
    backend_error,
    drive,
    fcall,
    invoke,
    lost,
    recover,
)
from .clock import ServerClock
from .codec import Command, Layout, verdict
from .connect import parse, sync_client
from .direct import SCRIPTED, Direct, ResponseError
from .protocol import Call, Protocol

#: SCAN's page size when ``dump`` lists the keys.
SCAN_COUNT = 1000
#: redis-py's Cluster target for every primary.
PRIMARIES = "primaries"


class Shared:
    """Construction common to both flavours."""

    def __init__(
        self,
        client: Any = None,
        *,
        prefix: str = "quota",
        cluster: bool = False,
        factory: Callable[[], Any] | None = None,
    ) -> None:
        if client is None and factory is None:
            raise ConfigError("a Redis engine needs a client or a factory of one")
        self._client = client
        self._factory = factory
        self.cluster = cluster
        self.layout = Layout(prefix)
        self.protocol = Protocol(self.layout, cluster)
        self.server_clock = ServerClock()
        self.functions = Functions()  # whether FCALL of the library serves this client

    @property
    def client(self) -> Any:
        """The redis-py client, made at first use (a Cluster client connects when made: a
        server down at start-up must be a BackendError of the first call, not of the
        constructor)."""
        if self._client is None:
            assert self._factory is not None
            try:
                self._client = self._factory()
            except ERRORS as exc:
                raise backend_error(exc) from exc
        return self._client

    def route(self, command: Command) -> tuple[Command, Any]:
        """The command as sent, and where it goes on Cluster when the engine says so (else
        None: redis-py routes it): FCALL to the node of its first key (redis-py would ask a
        node for the keys of every FCALL first; None without a slot map), FUNCTION LOAD to
        every primary (named in one word, which redis-py's asyncio Cluster client needs)."""
        if not self.cluster or command[0] not in ("FCALL", "FUNCTION"):
            return command, None
        if command[0] == "FUNCTION":
            return (f"{command[0]} {command[1]}", *command[2:]), PRIMARIES
        try:
            return command, self.client.get_node_from_key(command[3])
        except ERRORS:
            return command, None


class RedisBackend(Shared):
    """Synchronous Redis engine over redis-py (hiredis is used when installed). Script calls
    on a plain client go straight to its connections (``direct``)."""

    _direct: Direct | bool | None = False  # False until the client is known

    @property
    def direct(self) -> Direct | None:
        """The direct sender of script calls, or None where redis-py's path is kept."""
        if self._direct is False:
            self._direct = Direct(self.client) if Direct.fits(self.client) else None
        return self._direct  # type: ignore[return-value]

    @classmethod
    def from_url(cls, url: str) -> RedisBackend:
        target = parse(url)
        return cls(
            prefix=target.prefix,
            cluster=target.kind == "cluster",
            factory=lambda: sync_client(target),
        )

    def clock(self) -> float:
        if self.server_clock.stale:
            before = time.time()
            try:
                reply = self._time()
            except (*ERRORS, BackendError):
                self.server_clock.failed()
            else:
                self.server_clock.update(before, reply, time.time())
        return self.server_clock()

    def _time(self) -> Any:
        return self.client.time()

    def execute(self, command: Command) -> Any:
        """Send one command (script calls directly where they may be; on Cluster, where
        ``route`` says)."""
        direct = self.direct
        if direct is not None and command[0] in SCRIPTED:
            return direct(command)
        command, target = self.route(command)
        if target == PRIMARIES:
            return self._everywhere(command)
        if target is not None:
            try:
                return self.client.execute_command(*command, target_nodes=target)
            except RETRIED:  # an FCALL sent again untargeted: redis-py retries it
                pass
        return self.client.execute_command(*command)

    def _everywhere(self, command: Command) -> Any:
        """``command`` on every primary of the Cluster, one by one: a primary that cannot be
        reached is skipped (a call on it fails anyway), so a library lost by one node still
        loads while another node is down; the first reply, or the first failure when none
        answered. A refusal (an error reply) is raised as it is."""
        failure: BaseException | None = None
        answered: list[Any] = []
        for node in self.client.get_primaries():
            try:
                answered.append(self.client.execute_command(*command, target_nodes=node))
            except RETRIED as exc:
                failure = failure or exc
        if not answered:
            assert failure is not None
            raise failure
        return answered[0]

    def _eval(self, call: Call) -> Any:
        return drive(invoke(self.functions, *call), self.execute)

    def acquire(
        self, now: int, slot: str, ops: Sequence[Op], request_id: str | None, ttl_ms: int
    ) -> Verdict:
        fast = self.protocol.fast(now, slot, ops, request_id)
        if fast is None:
            return drive(self.protocol.acquire(now, slot, ops, request_id, ttl_ms), self._eval)
        if self.functions.usable:  # the hot path: the FCALL alone, no flow around it
            (keys, args), fields = fast
            try:
                return verdict(self.execute(fcall(keys, args)), fields)
            except ResponseError as exc:
                if not lost(exc):
                    raise backend_error(exc) from exc
                flow = recover(self.functions, keys, args, exc)
                return verdict(drive(flow, self.execute), fields)
            except ERRORS as exc:
                raise backend_error(exc) from exc
        return verdict(self._eval(fast[0]), fast[1])  # FCALL or the script, loaded as needed

    def settle(
        self, now: int, slot: str, request_id: str, actual: Mapping[str, int] | None
    ) -> bool:
        return drive(self.protocol.settle(now, slot, request_id, actual), self._eval)

    def settle_charges(
        self, now: int, charges: Sequence[Charge], actual: Mapping[str, int] | None
    ) -> None:
        drive(self.protocol.settle_charges(now, charges, actual), self._eval)

    def peek(self, now: int, ops: Sequence[Op]) -> list[Outcome]:
        return drive(self.protocol.peek(now, ops), self._eval)

    def reset(self, targets: Sequence[tuple[str, str]]) -> None:
        drive(self.protocol.reset(targets), self._eval)

    def top_up(self, now: int, op: Op, amount: int) -> int:
        return drive(self.protocol.top_up(now, op, amount), self._eval)

    def read_states(self, ops: Sequence[Op]) -> list[State]:
        return drive(reads.read_states(self.layout, ops), self.execute)

    def close(self) -> None:
        if isinstance(self._direct, Direct):
            self._direct.close()
        if self._client is not None:
            self._client.close()

    def dump(self, algorithms: Mapping[str, str]) -> dict[tuple[str, str], State]:
        """Every stored state, decoded (tests): ``algorithms`` maps limit name -> algorithm."""
        keys = list(self.client.scan_iter(match=self.layout.pattern(), count=SCAN_COUNT))
        return drive(reads.dump(self.layout, keys, algorithms), self.execute)
