"""The Redis engine (``redis://``, ``rediss://``, ``redis+unix://``, ``redis+sentinel://``,
``redis+cluster://`` and the ``valkey`` spellings): every operation is one Lua script call per
hash slot, so a decision over any number of limits is one round trip.

Scripts are called by SHA; a NOSCRIPT reply (restart, failover, ``SCRIPT FLUSH``) is answered
by EVAL of the full text, which reloads it on that node. Redis errors surface as
``quota.BackendError``. ``clock()`` is the server's clock (local time corrected by ``TIME``,
measured at first use and refreshed every minute), which the limiters use by default so that
every gateway host agrees on one time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ..algorithms import Charge, Outcome, State
from ..errors import BackendError, ConfigError
from .base import Op, Verdict
from .redis_batch import ERRORS, Batcher, NoScriptError, backend_error, evaluate
from .redis_codec import Arg, Layout, decode_state, script, script_sha
from .redis_connect import async_client, parse, sync_client
from .redis_protocol import Flow, Protocol


class ServerClock:
    """Epoch seconds on the server's clock: ``time.time()`` plus an offset measured by TIME."""

    REFRESH = 60.0  # seconds between measurements
    RETRY = 5.0  # seconds before measuring again after a failure

    def __init__(self) -> None:
        self.offset = 0.0
        self.due = 0.0  # time.monotonic() at which to measure again
        self.measured = False

    def __call__(self) -> float:
        return time.time() + self.offset

    @property
    def stale(self) -> bool:
        return time.monotonic() >= self.due

    def update(self, before: float, reply: Sequence[Any], after: float) -> None:
        """Record a TIME reply taken between local times ``before`` and ``after``."""
        server = int(reply[0]) + int(reply[1]) / 1e6
        self.offset = server - (before + after) / 2
        self.due = time.monotonic() + self.REFRESH
        self.measured = True

    def failed(self) -> None:
        self.due = time.monotonic() + self.RETRY


class _Shared:
    """Construction and introspection common to both flavours."""

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

    def _keys_of(self, ops: Sequence[Op]) -> dict[str, list[int]]:
        """Key -> indexes of the ops whose fields it holds (read_states: one HMGET per key)."""
        out: dict[str, list[int]] = {}
        for i, op in enumerate(ops):
            if op.algorithm == "history":
                key = self.layout.history(op.slot)
            elif op.algorithm == "balance":
                key = self.layout.balances(op.slot)
            else:
                key = self.layout.states(op.slot)
            out.setdefault(key, []).append(i)
        return out

    def _states(
        self, key: str, values: Mapping[str, str], algorithms: Mapping[str, str]
    ) -> Iterator[tuple[tuple[str, str], State]]:
        slot = key[key.index("{") + 1 : key.index("}")]
        for field, raw in values.items():
            yield (slot, field), decode_state(algorithms[field.split("/")[0]], raw)


class RedisBackend(_Shared):
    """Synchronous Redis engine over redis-py (hiredis is used when installed)."""

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

    def _eval(self, keys: list[str], args: list[Arg]) -> Any:
        try:
            try:
                return self.client.execute_command("EVALSHA", script_sha(), len(keys), *keys, *args)
            except NoScriptError:
                return self.client.execute_command("EVAL", script(), len(keys), *keys, *args)
        except ERRORS as exc:
            raise backend_error(exc) from exc

    def _run(self, flow: Flow) -> Any:
        try:
            call = next(flow)
            while True:
                call = flow.send(self._eval(*call))
        except StopIteration as stop:
            return stop.value

    def acquire(
        self, now: int, slot: str, ops: Sequence[Op], request_id: str | None, ttl_ms: int
    ) -> Verdict:
        verdict: Verdict = self._run(self.protocol.acquire(now, slot, ops, request_id, ttl_ms))
        return verdict

    def settle(
        self, now: int, slot: str, request_id: str, actual: Mapping[str, int] | None
    ) -> bool:
        return bool(self._run(self.protocol.settle(now, slot, request_id, actual)))

    def settle_charges(
        self, now: int, charges: Sequence[Charge], actual: Mapping[str, int] | None
    ) -> None:
        self._run(self.protocol.settle_charges(now, charges, actual))

    def peek(self, now: int, ops: Sequence[Op]) -> list[Outcome]:
        outcomes: list[Outcome] = self._run(self.protocol.peek(now, ops))
        return outcomes

    def reset(self, targets: Sequence[tuple[str, str]]) -> None:
        self._run(self.protocol.reset(targets))

    def top_up(self, now: int, op: Op, amount: int) -> int:
        return int(self._run(self.protocol.top_up(now, op, amount)))

    def read_states(self, ops: Sequence[Op]) -> list[State]:
        out: list[State] = [() for _ in ops]
        for key, idx in self._keys_of(ops).items():
            try:
                raw = self.client.hmget(key, [ops[i].field for i in idx])
            except ERRORS as exc:
                raise backend_error(exc) from exc
            for i, value in zip(idx, raw, strict=True):
                out[i] = decode_state(ops[i].algorithm, value or "")
        return out

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def dump(self, algorithms: Mapping[str, str]) -> dict[tuple[str, str], State]:
        """Every stored state, decoded (tests): ``algorithms`` maps limit name -> algorithm."""
        out: dict[tuple[str, str], State] = {}
        for key in self.client.scan_iter(match=f"{self.layout.prefix}:{{*", count=1000):
            if ":r:" not in key:
                out.update(self._states(key, self.client.hgetall(key), algorithms))
        return out


class AsyncRedisBackend(_Shared):
    """The Redis engine for asyncio (``redis.asyncio``). Concurrent calls are coalesced into
    pipelines (``quota.backends.redis_batch``) unless ``batch=False`` (``?batch=0``)."""

    def __init__(
        self,
        client: Any = None,
        *,
        prefix: str = "quota",
        cluster: bool = False,
        factory: Callable[[], Any] | None = None,
        batch: bool = True,
    ) -> None:
        super().__init__(client, prefix=prefix, cluster=cluster, factory=factory)
        self.batch = batch
        self._batcher: Batcher | None = None

    @property
    def batcher(self) -> Batcher | None:
        if self._batcher is None and self.batch:
            self._batcher = Batcher(self.client, scripted=not self.cluster)
        return self._batcher

    @classmethod
    def from_url(cls, url: str) -> AsyncRedisBackend:
        target = parse(url)
        return cls(
            prefix=target.prefix,
            cluster=target.kind == "cluster",
            factory=lambda: async_client(target),
            batch=target.batch,
        )

    def clock(self) -> float:
        return self.server_clock()

    async def connect(self) -> None:
        """Measure the server's clock now (otherwise done by the first operation)."""
        before = time.time()
        try:
            reply = await self.client.time()
        except (*ERRORS, BackendError):
            self.server_clock.failed()
        else:
            self.server_clock.update(before, reply, time.time())

    async def _eval(self, keys: list[str], args: list[Arg]) -> Any:
        if self.server_clock.stale:
            await self.connect()
        if self.batcher is not None:
            return await self.batcher.call(keys, args)
        return await evaluate(self.client, keys, args)

    async def _run(self, flow: Flow) -> Any:
        try:
            call = next(flow)
            while True:
                call = flow.send(await self._eval(*call))
        except StopIteration as stop:
            return stop.value

    async def acquire(
        self, now: int, slot: str, ops: Sequence[Op], request_id: str | None, ttl_ms: int
    ) -> Verdict:
        verdict: Verdict = await self._run(
            self.protocol.acquire(now, slot, ops, request_id, ttl_ms)
        )
        return verdict

    async def settle(
        self, now: int, slot: str, request_id: str, actual: Mapping[str, int] | None
    ) -> bool:
        return bool(await self._run(self.protocol.settle(now, slot, request_id, actual)))

    async def settle_charges(
        self, now: int, charges: Sequence[Charge], actual: Mapping[str, int] | None
    ) -> None:
        await self._run(self.protocol.settle_charges(now, charges, actual))

    async def peek(self, now: int, ops: Sequence[Op]) -> list[Outcome]:
        outcomes: list[Outcome] = await self._run(self.protocol.peek(now, ops))
        return outcomes

    async def reset(self, targets: Sequence[tuple[str, str]]) -> None:
        await self._run(self.protocol.reset(targets))

    async def top_up(self, now: int, op: Op, amount: int) -> int:
        return int(await self._run(self.protocol.top_up(now, op, amount)))

    async def read_states(self, ops: Sequence[Op]) -> list[State]:
        out: list[State] = [() for _ in ops]
        for key, idx in self._keys_of(ops).items():
            try:
                raw = await self.client.hmget(key, [ops[i].field for i in idx])
            except ERRORS as exc:
                raise backend_error(exc) from exc
            for i, value in zip(idx, raw, strict=True):
                out[i] = decode_state(ops[i].algorithm, value or "")
        return out

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def dump(self, algorithms: Mapping[str, str]) -> dict[tuple[str, str], State]:
        """Every stored state, decoded (tests): ``algorithms`` maps limit name -> algorithm."""
        out: dict[tuple[str, str], State] = {}
        async for key in self.client.scan_iter(match=f"{self.layout.prefix}:{{*", count=1000):
            if ":r:" not in key:
                out.update(self._states(key, await self.client.hgetall(key), algorithms))
        return out
