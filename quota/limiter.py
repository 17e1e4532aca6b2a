"""The plain check-and-consume API: ``Limiter`` (sync) and ``AsyncLimiter`` (asyncio).

Both are a ``LimiterBase`` (``quota.limiting``: planning, the block cache, verdicts) around
their engine; they differ only in how they call it (and how they sleep when asked to wait).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from functools import partial

from .backends import AsyncBackend, Backend, open_async_backend, open_backend
from .backends.base import Verdict
from .backends.guard import AsyncGuardedBackend
from .catalog import Principal
from .decision import Decision, Reservation
from .errors import QuotaError
from .limiting import Clock, LimiterBase, OnError, Target
from .planner import Prepared
from .states import LimitState
from .waiting import paced, paced_async, wait_budget

__all__ = ["AsyncLimiter", "Clock", "Limiter", "OnError", "Target"]


class Limiter(LimiterBase[Backend]):
    """Synchronous limiter: one all-or-nothing decision per ``acquire``."""

    _open = staticmethod(open_backend)

    def acquire(
        self,
        who: Principal,
        cost: Mapping[str, int],
        *,
        request_id: str | None = None,
        model: str | None = None,
        features: Iterable[str] | None = None,
        wait: float | None = None,
    ) -> Decision:
        """Charge ``cost`` against every limit of the plan on its meters, all or nothing.

        ``wait`` (seconds): on a denial that can succeed, sleep its exact ``retry_after`` and
        try again (the same ``request_id``), never waiting past ``wait`` in all."""
        if wait is not None:
            budget = wait_budget(wait)
            again = partial(self.acquire, who, cost, request_id=request_id, model=model)
            return paced(partial(again, features=features), self.sleep or time.sleep, budget)
        if self.observer is not None:
            return self._observed(who, cost, request_id, model, features)
        prep = self._before(who, cost, request_id, model, features)
        while isinstance(prep, Prepared):  # twice at most: again without denying shadow limits
            verdict = self.backend.acquire(
                prep.now, prep.slot, prep.ops, prep.request_id, self.reservation_ttl_ms
            )
            decision = self.verdicts.decision(prep, verdict)
            prep = decision if decision.allowed else self._after(prep, verdict, decision)
        return prep

    def _after(self, prep: Prepared, verdict: Verdict, decision: Decision) -> Prepared | Decision:
        """``LimiterBase._after``; a denial by a limit held back for higher-priority plans is
        told apart by one read of its whole capacity when the engine's answer cannot tell
        (``Verdicts.probe``)."""
        after = super()._after(prep, verdict, decision)
        probe = self.verdicts.probe(prep, after)
        if probe is None:
            return after
        try:
            whole = self.backend.peek(prep.now, [probe])[0]
        except QuotaError:  # the denial stands, with the limit's own code
            return after
        return self.verdicts.told(prep, after, whole)

    def _observed(
        self,
        who: Principal,
        cost: Mapping[str, int],
        request_id: str | None,
        model: str | None,
        features: Iterable[str] | None,
    ) -> Decision:
        """``acquire`` timed for the observer (and its store calls, when no guard times them)."""
        start = time.perf_counter()
        prep = self._before(who, cost, request_id, model, features)
        while isinstance(prep, Prepared):
            args = (prep.now, prep.slot, prep.ops, prep.request_id, self.reservation_ttl_ms)
            if self._calls is None:
                verdict = self.backend.acquire(*args)
            else:
                sent = time.perf_counter()
                try:
                    verdict = self.backend.acquire(*args)
                except Exception:
                    self._calls.backend_call("acquire", time.perf_counter() - sent, False)
                    raise
                self._calls.backend_call("acquire", time.perf_counter() - sent, True)
            decision = self.verdicts.decision(prep, verdict)
            prep = decision if decision.allowed else self._after(prep, verdict, decision)
        if self.observer is not None:
            self.observer.decision(prep, who.plan, time.perf_counter() - start)
        return prep

    def settle(
        self, target: Target, actual: Mapping[str, int], *, who: Principal | None = None
    ) -> bool:
        """Turn the estimate into ``actual`` usage per meter (others keep their estimate)."""
        amounts = self.catalog.canonical(actual, "actual usage")
        return self._settle(self._target(target, who), amounts)

    def release(self, target: Target, *, who: Principal | None = None) -> bool:
        """Return everything the reservation charged (e.g. the call failed)."""
        return self._settle(self._target(target, who), None)

    def _settle(
        self, found: tuple[str, str] | Reservation | None, amounts: Mapping[str, int] | None
    ) -> bool:
        if found is None:
            return False
        self._forget(found)
        if isinstance(found, Reservation):
            self.backend.settle_charges(self._now(), found.charges, amounts)
            return True
        return self.backend.settle(self._now(), *found, amounts)

    def peek(self, who: Principal, *, model: str | None = None) -> list[LimitState]:
        """The state of every limit of the principal's plan that a request for ``model``
        meets (without one: the limits of every request, no per-model ones), charging
        nothing."""
        pairs = self._peek_ops(who, model)
        return self._states(pairs, self.backend.peek(self._now(), [op for _, op in pairs]))

    def reset(
        self, who: Principal, *, include_balance: bool = False, include_groups: bool = False
    ) -> None:
        """Forget the account's usage (and, only when asked, its prepaid balance, and what
        its groups share with every member)."""
        self._forget_account(who)
        self.backend.reset(self._reset_targets(who, include_balance, include_groups))

    def top_up(self, who: Principal, meter: str, amount: int) -> int:
        """Add ``amount`` to the principal's balance on ``meter``; return the new balance."""
        self._forget_account(who)
        return self.backend.top_up(self._now(), self._top_up_op(who, meter, amount), amount)

    def usage(self, who: Principal, days: int = 30) -> dict[str, dict[str, int]]:
        """Daily totals per meter of the account, ``{"YYYY-MM-DD": {meter: amount}}``, for the
        last ``days`` days in the plan's zone, oldest first, today last, idle days as zeros."""
        query = self.planner.usage_query(who, self._now(), days)
        return query.report(self.backend.read_states(query.ops))

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Limiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncLimiter(LimiterBase[AsyncBackend]):
    """The asyncio limiter: the methods of ``Limiter`` as coroutines."""

    _open = staticmethod(open_async_backend)
    _guard_class = AsyncGuardedBackend

    async def acquire(
        self,
        who: Principal,
        cost: Mapping[str, int],
        *,
        request_id: str | None = None,
        model: str | None = None,
        features: Iterable[str] | None = None,
        wait: float | None = None,
    ) -> Decision:
        if wait is not None:
            budget = wait_budget(wait)
            again = partial(self.acquire, who, cost, request_id=request_id, model=model)
            sleep = self.sleep or asyncio.sleep
            return await paced_async(partial(again, features=features), sleep, budget)
        if self.observer is not None:
            return await self._observed(who, cost, request_id, model, features)
        prep = self._before(who, cost, request_id, model, features)
        while isinstance(prep, Prepared):  # twice at most: again without denying shadow limits
            verdict = await self.backend.acquire(
                prep.now, prep.slot, prep.ops, prep.request_id, self.reservation_ttl_ms
            )
            decision = self.verdicts.decision(prep, verdict)
            prep = decision if decision.allowed else await self._denied(prep, verdict, decision)
        return prep

    async def _denied(
        self, prep: Prepared, verdict: Verdict, decision: Decision
    ) -> Prepared | Decision:
        """``Limiter._after`` for the asyncio engine."""
        after = self._after(prep, verdict, decision)
        probe = self.verdicts.probe(prep, after)
        if probe is None:
            return after
        try:
            whole = (await self.backend.peek(prep.now, [probe]))[0]
        except QuotaError:  # the denial stands, with the limit's own code
            return after
        return self.verdicts.told(prep, after, whole)

    async def _observed(
        self,
        who: Principal,
        cost: Mapping[str, int],
        request_id: str | None,
        model: str | None,
        features: Iterable[str] | None,
    ) -> Decision:
        start = time.perf_counter()
        prep = self._before(who, cost, request_id, model, features)
        while isinstance(prep, Prepared):
            args = (prep.now, prep.slot, prep.ops, prep.request_id, self.reservation_ttl_ms)
            if self._calls is None:
                verdict = await self.backend.acquire(*args)
            else:
                sent = time.perf_counter()
                try:
                    verdict = await self.backend.acquire(*args)
                except Exception:
                    self._calls.backend_call("acquire", time.perf_counter() - sent, False)
                    raise
                self._calls.backend_call("acquire", time.perf_counter() - sent, True)
            decision = self.verdicts.decision(prep, verdict)
            prep = decision if decision.allowed else await self._denied(prep, verdict, decision)
        if self.observer is not None:
            self.observer.decision(prep, who.plan, time.perf_counter() - start)
        return prep

    async def settle(
        self, target: Target, actual: Mapping[str, int], *, who: Principal | None = None
    ) -> bool:
        amounts = self.catalog.canonical(actual, "actual usage")
        return await self._settle(self._target(target, who), amounts)

    async def release(self, target: Target, *, who: Principal | None = None) -> bool:
        return await self._settle(self._target(target, who), None)

    async def _settle(
        self, found: tuple[str, str] | Reservation | None, amounts: Mapping[str, int] | None
    ) -> bool:
        if found is None:
            return False
        self._forget(found)
        if isinstance(found, Reservation):
            await self.backend.settle_charges(self._now(), found.charges, amounts)
            return True
        return await self.backend.settle(self._now(), *found, amounts)

    async def peek(self, who: Principal, *, model: str | None = None) -> list[LimitState]:
        pairs = self._peek_ops(who, model)
        return self._states(pairs, await self.backend.peek(self._now(), [op for _, op in pairs]))

    async def reset(
        self, who: Principal, *, include_balance: bool = False, include_groups: bool = False
    ) -> None:
        self._forget_account(who)
        await self.backend.reset(self._reset_targets(who, include_balance, include_groups))

    async def top_up(self, who: Principal, meter: str, amount: int) -> int:
        self._forget_account(who)
        return await self.backend.top_up(self._now(), self._top_up_op(who, meter, amount), amount)

    async def usage(self, who: Principal, days: int = 30) -> dict[str, dict[str, int]]:
        query = self.planner.usage_query(who, self._now(), days)
        return query.report(await self.backend.read_states(query.ops))

    async def close(self) -> None:
        await self.backend.close()

    async def __aenter__(self) -> AsyncLimiter:
        connect = getattr(self.backend, "connect", None)
        if connect is not None:  # measure the server's clock before the first decision
            await connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
