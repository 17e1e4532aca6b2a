"""The asyncio Redis engine: the operations of ``protocol`` run by ``calls.drive_async``, with
concurrent calls coalesced into batches (``batch``) unless ``batch=False`` (``?batch=0``).

Construction, routing on Cluster and the server's clock are shared with the blocking engine
(``engine.Shared``); an asyncio engine reads the clock measured by ``connect`` (or its first
operation) and never blocks on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...algorithms import Charge, Outcome, State
from ...errors import BackendError
from ..base import Op, Verdict
from . import reads
from .batch import Batcher
from .calls import ERRORS, RETRIED, drive_async, invoke
from .codec import Command, verdict
from .connect import async_client, parse
from .engine import PRIMARIES, SCAN_COUNT, Shared
from .protocol import Call

__all__ = ["AsyncRedisBackend"]


class AsyncRedisBackend(Shared):
    """The Redis engine for asyncio (``redis.asyncio``). Concurrent calls are coalesced into
    batches (``quota.backends.redis.batch``) unless ``batch=False`` (``?batch=0``)."""

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
            self._batcher = Batcher(
                self.client, self.execute, self.functions, scripted=not self.cluster
            )
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

    async def execute(self, command: Command) -> Any:
        """Send one command (on Cluster, where ``route`` says)."""
        command, target = self.route(command)
        if target == PRIMARIES:
            return await self._everywhere(command)
        if target is not None:
            try:
                return await self.client.execute_command(*command, target_nodes=target)
            except RETRIED:  # an FCALL sent again untargeted: redis-py retries it
                pass
        return await self.client.execute_command(*command)

    async def _everywhere(self, command: Command) -> Any:
        """``RedisBackend._everywhere`` for the asyncio Cluster client."""
        failure: BaseException | None = None
        answered: list[Any] = []
        for node in self.client.get_primaries():
            try:
                answered.append(await self.client.execute_command(*command, target_nodes=node))
            except RETRIED as exc:
                failure = failure or exc
        if not answered:
            assert failure is not None
            raise failure
        return answered[0]

    async def connect(self) -> None:
        """Measure the server's clock now (otherwise done by the first operation)."""
        before = time.time()
        try:
            reply = await self.client.time()
        except (*ERRORS, BackendError):
            self.server_clock.failed()
        else:
            self.server_clock.update(before, reply, time.time())

    async def _eval(self, call: Call) -> Any:
        if self.server_clock.stale:
            await self.connect()
        if self.batcher is not None:
            return await self.batcher.call(*call)
        return await drive_async(invoke(self.functions, *call), self.execute)

    async def acquire(
        self, now: int, slot: str, ops: Sequence[Op], request_id: str | None, ttl_ms: int
    ) -> Verdict:
        fast = self.protocol.fast(now, slot, ops, request_id)
        if fast is not None:  # the hot path: one call, no flow around it
            return verdict(await self._eval(fast[0]), fast[1])
        flow = self.protocol.acquire(now, slot, ops, request_id, ttl_ms)
        return await drive_async(flow, self._eval)

    async def settle(
        self, now: int, slot: str, request_id: str, actual: Mapping[str, int] | None
    ) -> bool:
        return await drive_async(self.protocol.settle(now, slot, request_id, actual), self._eval)

    async def settle_charges(
        self, now: int, charges: Sequence[Charge], actual: Mapping[str, int] | None
    ) -> None:
        await drive_async(self.protocol.settle_charges(now, charges, actual), self._eval)

    async def peek(self, now: int, ops: Sequence[Op]) -> list[Outcome]:
        return await drive_async(self.protocol.peek(now, ops), self._eval)

    async def reset(self, targets: Sequence[tuple[str, str]]) -> None:
        await drive_async(self.protocol.reset(targets), self._eval)

    async def top_up(self, now: int, op: Op, amount: int) -> int:
        return await drive_async(self.protocol.top_up(now, op, amount), self._eval)

    async def read_states(self, ops: Sequence[Op]) -> list[State]:
        return await drive_async(reads.read_states(self.layout, ops), self.execute)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def dump(self, algorithms: Mapping[str, str]) -> dict[tuple[str, str], State]:
        """Every stored state, decoded (tests): ``algorithms`` maps limit name -> algorithm."""
        found = self.client.scan_iter(match=self.layout.pattern(), count=SCAN_COUNT)
        keys = [key async for key in found]
        return await drive_async(reads.dump(self.layout, keys, algorithms), self.execute)
