"""The failure machinery around a shared store: timeout budget, circuit breaker, fallback.

``GuardedBackend(primary, fallback)`` (and ``AsyncGuardedBackend``) implement the engine protocol
of ``quota.backends.base``. Each call goes to the store unless the breaker is open; a call that
raises or outruns the budget counts as a failure and the failure policy (``Fallback``) answers
instead, marking the verdict's ``source``. ``acquire`` and ``peek`` never raise a store failure;
``settle``/``release`` drop what the store cannot take and count it; ``top_up`` and ``reset``
are operator actions and raise ``BackendError``.

The budget (``quota.backends.budget``): sync calls are bounded by the client's socket timeouts
(the limiter puts them in the storage URL); async calls also by ``asyncio.timeout``. A call that
timed out may still have been applied by the server: that charge stays, so a timeout can only
make the limiter admit less later, never more.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..algorithms import Charge, Outcome, State
from ..errors import BackendError, QuotaError
from ..observe import Observer
from .base import AsyncBackend, Backend, Op, Verdict
from .breaker import Breaker, GuardStats
from .budget import bounded
from .fallback import Fallback


def _caller_error(exc: Exception) -> bool:
    """Errors that are the caller's (bad input, bad configuration), not the store's."""
    return isinstance(exc, QuotaError) and not isinstance(exc, BackendError)


class _Guard:
    """State shared by both flavours: the breaker, the fallback, the counters."""

    def __init__(
        self,
        primary: Any,
        fallback: Fallback,
        *,
        breaker: Breaker | None = None,
        timeout: float | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.breaker = breaker or Breaker()
        self.timeout = timeout
        self.observer = observer
        self.stats = GuardStats()

    def __getattr__(self, name: str) -> Any:
        # Engine extras (dump, batcher, server_clock, connect, ...) come from the store.
        if name == "primary":
            raise AttributeError(name)
        return getattr(self.primary, name)

    def _ok(self, operation: str, start: float) -> None:
        self.breaker.success()
        if self.observer is not None:
            self.observer.backend_call(operation, time.perf_counter() - start, True)

    def _failed(self, operation: str, start: float, exc: Exception) -> None:
        self.breaker.failure()
        self.stats.failures += 1
        if isinstance(exc, TimeoutError) or "Timeout" in str(exc):
            self.stats.timeouts += 1
        if self.observer is not None:
            self.observer.backend_call(operation, time.perf_counter() - start, False)

    def _closed(self) -> bool:
        if self.breaker.allow():
            return True
        self.stats.short_circuited += 1
        return False

    def _fallback_acquire(
        self, now: int, slot: str, ops: Sequence[Op], request_id: str | None, ttl_ms: int
    ) -> Verdict:
        verdict = self.fallback.acquire(now, slot, ops, request_id, ttl_ms)
        self.stats.decisions[verdict.source] += 1
        return verdict

    def _fallback_peek(self, now: int, ops: Sequence[Op]) -> list[Outcome]:
        self.stats.peeks += 1
        return self.fallback.peek(now, ops)

    def _unavailable(self, operation: str) -> BackendError:
        return BackendError(
            f"the quota store is unavailable (circuit open, retry in"
            f" {self.breaker.retry_in():.2f} s): {operation} needs it"
        )


class GuardedBackend(_Guard):
    """A synchronous store behind the failure policy (a ``Backend``)."""

    primary: Backend

    def clock(self) -> float:
        """The store's clock; while it fails, its last measurement (no call that could hang)."""
        if self.breaker.failures == 0:
            return float(self.primary.clock())  # type: ignore[attr-defined]
        cached = getattr(self.primary, "server_clock", None)
        return float(cached()) if cached is not None else time.time()

    def _call(self, operation: str, call: Any) -> tuple[bool, Any]:
        """(True, result) from the store, or (False, None) after counting the failure."""
        start = time.perf_counter()
        try:
            result = call()
        except Exception as exc:
            if _caller_error(exc):
                raise
            self._failed(operation, start, exc)
            return False, None
        self._ok(operation, start)
        return True, result

    def acquire(
        self, now: int, slot: str, ops: Sequence[Op], request_id: str | None, ttl_ms: int
    ) -> Verdict:
        if self._closed():
            ok, verdict = self._call(
                "acquire", lambda: self.primary.acquire(now, slot, ops, request_id, ttl_ms)
            )
            if ok:
                return verdict  # type: ignore[no-any-return]
        return self._fallback_acquire(now, slot, ops, request_id, ttl_ms)

    def settle(
        self, now: int, slot: str, request_id: str, actual: Mapping[str, int] | None
    ) -> bool:
        if self.fallback.settle(now, slot, request_id, actual):
            return True
        if self._closed():
            ok, done = self._call(
                "settle", lambda: self.primary.settle(now, slot, request_id, actual)
            )
            if ok:
                return bool(done)
        self.stats.settles_dropped += 1
        return False

    def settle_charges(
        self, now: int, charges: Sequence[Charge], actual: Mapping[str, int] | None
    ) -> None:
        local, store = self.fallback.split(charges)
        if local:
            self.fallback.local.settle_charges(now, local, actual)
        if not store:
            return
        if self._closed():
            ok, _ = self._call("settle", lambda: self.primary.settle_charges(now, store, actual))
            if ok:
                return
        self.stats.settles_dropped += 1

    def peek(self, now: int, ops: Sequence[Op]) -> list[Outcome]:
        if self._closed():
            ok, outcomes = self._call("peek", lambda: self.primary.peek(now, ops))
            if ok:
                return list(outcomes)
        return self._fallback_peek(now, ops)

    def reset(self, targets: Sequence[tuple[str, str]]) -> None:
        self.fallback.local.reset(targets)
        self._operator("reset", lambda: self.primary.reset(targets))

    def top_up(self, now: int, op: Op, amount: int) -> int:
        return int(self._operator("top_up", lambda: self.primary.top_up(now, op, amount)))

    def read_states(self, ops: Sequence[Op]) -> list[State]:
        return list(self._operator("read_states", lambda: self.primary.read_states(ops)))

    def _operator(self, operation: str, call: Any) -> Any:
        """An operator action: to the store or a BackendError (never decided by policy)."""
        if not self._closed():
            raise self._unavailable(operation)
        start = time.perf_counter()
        try:
            result = call()
        except Exception as exc:
            if not _caller_error(exc):
                self._failed(operation, start, exc)
            raise
        self._ok(operation, start)
        return result

    def close(self) -> None:
        self.primary.close()


class AsyncGuardedBackend(_Guard):
    """An asyncio store behind the failure policy (an ``AsyncBackend``); every store call is
    also bounded by ``asyncio.timeout(timeout)``."""

    primary: AsyncBackend

    async def _call(self, operation: str, coro: Any) -> tuple[bool, Any]:
        """(True, result) from the store, or (False, None) after counting the failure."""
        start = time.perf_counter()
        try:
            result = await bounded(coro, self.timeout)
        except Exception as exc:
            if _caller_error(exc):
                raise
            self._failed(operation, start, exc)
            return False, None
        self._ok(operation, start)
        return True, result

    async def acquire(
        self, now: int, slot: str, ops: Sequence[Op], request_id: str | None, ttl_ms: int
    ) -> Verdict:
        if self._closed():
            ok, verdict = await self._call(
                "acquire", self.primary.acquire(now, slot, ops, request_id, ttl_ms)
            )
            if ok:
                return verdict  # type: ignore[no-any-return]
        return self._fallback_acquire(now, slot, ops, request_id, ttl_ms)

    async def settle(
        self, now: int, slot: str, request_id: str, actual: Mapping[str, int] | None
    ) -> bool:
        if self.fallback.settle(now, slot, request_id, actual):
            return True
        if self._closed():
            ok, done = await self._call(
                "settle", self.primary.settle(now, slot, request_id, actual)
            )
            if ok:
                return bool(done)
        self.stats.settles_dropped += 1
        return False

    async def settle_charges(
        self, now: int, charges: Sequence[Charge], actual: Mapping[str, int] | None
    ) -> None:
        local, store = self.fallback.split(charges)
        if local:
            self.fallback.local.settle_charges(now, local, actual)
        if not store:
            return
        if self._closed():
            ok, _ = await self._call("settle", self.primary.settle_charges(now, store, actual))
            if ok:
                return
        self.stats.settles_dropped += 1

    async def peek(self, now: int, ops: Sequence[Op]) -> list[Outcome]:
        if self._closed():
            ok, outcomes = await self._call("peek", self.primary.peek(now, ops))
            if ok:
                return list(outcomes)
        return self._fallback_peek(now, ops)

    async def reset(self, targets: Sequence[tuple[str, str]]) -> None:
        self.fallback.local.reset(targets)
        await self._operator("reset", self.primary.reset(targets))

    async def top_up(self, now: int, op: Op, amount: int) -> int:
        return int(await self._operator("top_up", self.primary.top_up(now, op, amount)))

    async def read_states(self, ops: Sequence[Op]) -> list[State]:
        return list(await self._operator("read_states", self.primary.read_states(ops)))

    async def _operator(self, operation: str, coro: Any) -> Any:
        if not self._closed():
            coro.close()
            raise self._unavailable(operation)
        start = time.perf_counter()
        try:
            result = await bounded(coro, self.timeout)
        except TimeoutError as exc:
            self._failed(operation, start, exc)
            raise BackendError(f"the quota store did not answer {operation} in time") from exc
        except Exception as exc:
            if not _caller_error(exc):
                self._failed(operation, start, exc)
            raise
        self._ok(operation, start)
        return result

    async def close(self) -> None:
        await self.primary.close()


def guarded(backend: Any) -> bool:
    """Whether a store needs the guard: everything but the in-process engine."""
    from .memory import AsyncMemoryBackend, MemoryBackend

    return not isinstance(backend, MemoryBackend | AsyncMemoryBackend | _Guard)
