"""The plain check-and-consume API: ``Limiter`` (sync) and ``AsyncLimiter`` (asyncio)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Generic, Literal, TypeVar

from .algorithms import MAX_SAFE, Outcome
from .backends import AsyncBackend, Backend, Op, open_async_backend, open_backend
from .catalog import Catalog, Principal
from .decision import Decision, LimitState, Reservation
from .errors import ConfigError, CostError
from .keys import DEFAULT_SECRET, account_slot, field_name
from .limit import Limit
from .observe import Observer
from .planner import Planner, Prepared

Clock = Callable[[], float]
OnError = Literal["allow", "deny", "local"]
Target = Decision | str
B = TypeVar("B", Backend, AsyncBackend)


class _Base(Generic[B]):
    """What both limiters share: the catalog, the clock, the planner and the engine.

    ``storage`` is a URL (``memory://``; ``redis://`` once the Redis engine is installed) or an
    engine instance. ``clock`` returns epoch seconds; inject one to move time in tests.
    """

    @staticmethod
    def _open(url: str) -> B:
        raise NotImplementedError

    def __init__(
        self,
        catalog: Catalog | str | Path,
        storage: str | B = "memory://",
        *,
        clock: Clock | None = None,
        on_error: OnError | None = None,
        reservation_ttl: float | None = None,
        secret: bytes | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.catalog = catalog if isinstance(catalog, Catalog) else Catalog.load(catalog)
        if on_error not in (None, "allow", "deny", "local"):
            raise ConfigError(f"on_error must be 'allow', 'deny' or 'local', got {on_error!r}")
        self.on_error = on_error
        self.observer = observer
        ttl = self.catalog.reservation_ttl if reservation_ttl is None else reservation_ttl
        if ttl <= 0:
            raise ConfigError(f"reservation_ttl must be positive, got {ttl!r}")
        self.reservation_ttl_ms = math.ceil(ttl * 1000)
        self.planner = Planner(self.catalog, secret or DEFAULT_SECRET)
        self.backend: B = self._open(storage) if isinstance(storage, str) else storage
        # A shared store brings its own clock (Redis: the server's TIME) so that every host
        # of a fleet agrees on one time; an injected clock wins.
        self.clock: Clock = clock or getattr(self.backend, "clock", None) or time.time

    def _now(self) -> int:
        # Nearest ms: a float clock built by adding steps (t += 6.1) must not lose a millisecond.
        return round(self.clock() * 1000)

    def _prepare(
        self,
        who: Principal,
        cost: Mapping[str, int],
        request_id: str | None,
        model: str | None,
        features: Iterable[str] | None,
    ) -> Prepared | Decision:
        return self.planner.prepare(who, cost, self._now(), request_id, model, features)

    def _target(
        self, target: Target, who: Principal | None
    ) -> tuple[str, str] | Reservation | None:
        """What to settle: (slot, request id) of a recorded reservation, a reservation that
        carries its charges (taken: it settles once), or None when there is nothing to do.

        Request ids are per account, so settling by id needs the principal."""
        if isinstance(target, Decision):
            res = target.reservation
            if res is None:
                return None
            if res.request_id is not None:
                return res.slot, res.request_id
            if not res.open:
                return None
            res.open = False
            return res
        if not isinstance(target, str) or not target:
            raise CostError(f"settle/release takes a Decision or a request id, got {target!r}")
        if who is None:
            raise CostError(
                f"settling request id {target!r} needs who=Principal(...): request ids are per"
                " account"
            )
        return account_slot(who.account, self.planner.secret), target

    def _peek_ops(self, who: Principal) -> list[tuple[Limit, Op]]:
        plan = self.catalog.plan(who.plan)
        now = self._now()
        return [
            (lim, self.planner.op(who, plan, lim, now, 0))
            for lim in plan.limits
            if lim.scope != "key" or who.key is not None
        ]

    def _reset_targets(self, who: Principal, include_balance: bool) -> list[tuple[str, str]]:
        """Every field the catalog may have stored for this account (any plan it was on)."""
        slot = account_slot(who.account, self.planner.secret)
        out: set[tuple[str, str]] = set()
        for plan in self.catalog.plans.values():
            for lim in plan.limits:
                if lim.scope == "global" or (lim.scope == "key" and who.key is None):
                    continue
                if lim.algorithm == "balance" and not include_balance:
                    continue
                out.add((slot, field_name(lim.name, lim.scope, who.key, self.planner.secret)))
        return sorted(out)

    def _top_up_op(self, who: Principal, meter: str, amount: int) -> Op:
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_SAFE:
            raise CostError(f"top_up amount must be a positive integer below 2**53, got {amount!r}")
        plan = self.catalog.plan(who.plan)
        canonical = self.catalog.meter_of(meter)
        for lim in plan.limits:
            if lim.algorithm == "balance" and lim.meter == canonical:
                return self.planner.op(who, plan, lim, self._now(), 0)
        raise CostError(f"plan {plan.name!r} has no balance on meter {meter!r} to top up")

    def _states(self, pairs: list[tuple[Limit, Op]], outcomes: list[Outcome]) -> list[LimitState]:
        return [
            self.planner.state(lim, op, out) for (lim, op), out in zip(pairs, outcomes, strict=True)
        ]


class Limiter(_Base[Backend]):
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
    ) -> Decision:
        """Charge ``cost`` against every limit of the plan on its meters, all or nothing."""
        if self.observer is not None:
            return self._observed(who, cost, request_id, model, features)
        prep = self._prepare(who, cost, request_id, model, features)
        if isinstance(prep, Decision):
            return prep
        verdict = self.backend.acquire(
            prep.now, prep.slot, prep.ops, prep.request_id, self.reservation_ttl_ms
        )
        return self.planner.decision(prep, verdict)

    def _observed(
        self,
        who: Principal,
        cost: Mapping[str, int],
        request_id: str | None,
        model: str | None,
        features: Iterable[str] | None,
    ) -> Decision:
        observer = self.observer
        assert observer is not None
        start = time.perf_counter()
        prep = self._prepare(who, cost, request_id, model, features)
        if isinstance(prep, Decision):
            observer.decision(prep, who.plan, time.perf_counter() - start)
            return prep
        sent = time.perf_counter()
        try:
            verdict = self.backend.acquire(
                prep.now, prep.slot, prep.ops, prep.request_id, self.reservation_ttl_ms
            )
        except Exception:
            observer.backend_call("acquire", time.perf_counter() - sent, False)
            raise
        observer.backend_call("acquire", time.perf_counter() - sent, True)
        decision = self.planner.decision(prep, verdict)
        observer.decision(decision, who.plan, time.perf_counter() - start)
        return decision

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
        if isinstance(found, Reservation):
            self.backend.settle_charges(self._now(), found.charges, amounts)
            return True
        return self.backend.settle(self._now(), *found, amounts)

    def peek(self, who: Principal) -> list[LimitState]:
        """The state of every limit of the principal's plan, charging nothing."""
        pairs = self._peek_ops(who)
        return self._states(pairs, self.backend.peek(self._now(), [op for _, op in pairs]))

    def reset(self, who: Principal, *, include_balance: bool = False) -> None:
        """Forget the account's usage (and, only when asked, its prepaid balance)."""
        self.backend.reset(self._reset_targets(who, include_balance))

    def top_up(self, who: Principal, meter: str, amount: int) -> int:
        """Add ``amount`` to the principal's balance on ``meter``; return the new balance."""
        return self.backend.top_up(self._now(), self._top_up_op(who, meter, amount), amount)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Limiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncLimiter(_Base[AsyncBackend]):
    """The asyncio limiter: the methods of ``Limiter`` as coroutines."""

    _open = staticmethod(open_async_backend)

    async def acquire(
        self,
        who: Principal,
        cost: Mapping[str, int],
        *,
        request_id: str | None = None,
        model: str | None = None,
        features: Iterable[str] | None = None,
    ) -> Decision:
        observer = self.observer
        start = time.perf_counter()
        prep = self._prepare(who, cost, request_id, model, features)
        if isinstance(prep, Decision):
            if observer is not None:
                observer.decision(prep, who.plan, time.perf_counter() - start)
            return prep
        if observer is None:
            verdict = await self.backend.acquire(
                prep.now, prep.slot, prep.ops, prep.request_id, self.reservation_ttl_ms
            )
            return self.planner.decision(prep, verdict)
        sent = time.perf_counter()
        try:
            verdict = await self.backend.acquire(
                prep.now, prep.slot, prep.ops, prep.request_id, self.reservation_ttl_ms
            )
        except Exception:
            observer.backend_call("acquire", time.perf_counter() - sent, False)
            raise
        observer.backend_call("acquire", time.perf_counter() - sent, True)
        decision = self.planner.decision(prep, verdict)
        observer.decision(decision, who.plan, time.perf_counter() - start)
        return decision

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
        if isinstance(found, Reservation):
            await self.backend.settle_charges(self._now(), found.charges, amounts)
            return True
        return await self.backend.settle(self._now(), *found, amounts)

    async def peek(self, who: Principal) -> list[LimitState]:
        pairs = self._peek_ops(who)
        return self._states(pairs, await self.backend.peek(self._now(), [op for _, op in pairs]))

    async def reset(self, who: Principal, *, include_balance: bool = False) -> None:
        await self.backend.reset(self._reset_targets(who, include_balance))

    async def top_up(self, who: Principal, meter: str, amount: int) -> int:
        return await self.backend.top_up(self._now(), self._top_up_op(who, meter, amount), amount)

    async def close(self) -> None:
        await self.backend.close()

    async def __aenter__(self) -> AsyncLimiter:
        connect = getattr(self.backend, "connect", None)
        if connect is not None:  # measure the server's clock before the first decision
            await connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
