"""The in-process engine (``memory://``): runs the pure algorithms over a dict, under a lock.

Thread-safe (one lock; every operation is a few microseconds of pure Python) and asyncio-safe
(the async flavour never awaits while holding state). Memory stays bounded by active
principals: every stored state carries its expiry and a heap sweeps what has expired.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..algorithms import ALGORITHMS, Balance, Charge, Outcome, State, Step, decide, peek, settle_all
from .base import Op, Verdict

Key = tuple[str, str]


@dataclass(slots=True)
class _Record:
    """A reservation: what was charged, and the verdict to replay for a repeated request id."""

    charges: tuple[Charge, ...]
    verdict: Verdict
    expires: int
    open: bool = True


class MemoryBackend:
    """Synchronous in-memory engine."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[Key, tuple[State, int | None]] = {}
        self._records: dict[Key, _Record] = {}
        # Heaps of (expiry, key): at most one scheduled entry per key; rescheduled when popped
        # early because the key was written again since.
        self._state_heap: list[tuple[int, Key]] = []
        self._scheduled: dict[Key, int] = {}
        self._record_heap: list[tuple[int, Key]] = []

    @classmethod
    def from_url(cls, url: str) -> MemoryBackend:
        return cls()

    # -- storage helpers (lock held) ---------------------------------------------------------

    def _load(self, key: Key) -> State:
        entry = self._states.get(key)
        return entry[0] if entry else ()

    def _store(self, key: Key, state: State, expiry: int | None, now: int) -> None:
        if not state or (expiry is not None and expiry <= now):
            self._states.pop(key, None)
            return
        self._states[key] = (state, expiry)
        if expiry is not None and key not in self._scheduled:
            self._scheduled[key] = expiry
            heapq.heappush(self._state_heap, (expiry, key))

    def _sweep(self, now: int) -> None:
        heap = self._state_heap
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            del self._scheduled[key]
            entry = self._states.get(key)
            if entry is None:
                continue
            if entry[1] is None or entry[1] > now:
                if entry[1] is not None:
                    self._scheduled[key] = entry[1]
                    heapq.heappush(heap, (entry[1], key))
                continue
            del self._states[key]
        rheap = self._record_heap
        while rheap and rheap[0][0] <= now:
            _, rid = heapq.heappop(rheap)
            rec = self._records.get(rid)
            if rec is not None and rec.expires <= now:
                del self._records[rid]

    def _write(
        self,
        now: int,
        keys: Sequence[Key],
        algos: Sequence[str],
        params: Sequence[tuple[int, ...]],
        states: Sequence[State],
    ) -> None:
        for key, algo, p, st in zip(keys, algos, params, states, strict=True):
            self._store(key, st, ALGORITHMS[algo].expiry(st, p) if st else 0, now)

    # -- operations --------------------------------------------------------------------------

    def acquire(
        self, now: int, slot: str, ops: Sequence[Op], request_id: str | None, ttl_ms: int
    ) -> Verdict:
        with self._lock:
            self._sweep(now)
            if request_id is not None:
                rec = self._records.get((slot, request_id))
                if rec is not None:
                    v = rec.verdict
                    return Verdict(v.allowed, v.outcomes, v.fields, replayed=True)
            keys = [(op.slot, op.field) for op in ops]
            states = [self._load(k) for k in keys]
            allowed, outcomes, new = decide(states, now, ops)
            verdict = Verdict(allowed, tuple(outcomes), tuple(op.field for op in ops))
            if not allowed:
                return verdict
            self._write(now, keys, [o.algorithm for o in ops], [o.params for o in ops], new)
            if request_id is not None:
                charges = tuple(
                    Charge(
                        op.slot, op.field, op.meter, op.algorithm, op.params, out.anchor, op.cost
                    )
                    for op, out in zip(ops, outcomes, strict=True)
                )
                self._records[(slot, request_id)] = _Record(charges, verdict, now + ttl_ms)
                heapq.heappush(self._record_heap, (now + ttl_ms, (slot, request_id)))
            return verdict

    def settle(
        self, now: int, slot: str, request_id: str, actual: Mapping[str, int] | None
    ) -> bool:
        with self._lock:
            self._sweep(now)
            rec = self._records.get((slot, request_id))
            if rec is None or not rec.open:
                return False
            rec.open = False
            self._settle(now, rec.charges, actual)
            return True

    def settle_charges(
        self, now: int, charges: Sequence[Charge], actual: Mapping[str, int] | None
    ) -> None:
        with self._lock:
            self._sweep(now)
            self._settle(now, charges, actual)

    def _settle(
        self, now: int, charges: Sequence[Charge], actual: Mapping[str, int] | None
    ) -> None:
        keys = [(c.slot, c.field) for c in charges]
        new = settle_all([self._load(k) for k in keys], now, charges, actual)
        self._write(now, keys, [c.algorithm for c in charges], [c.params for c in charges], new)

    def peek(self, now: int, ops: Sequence[Op]) -> list[Outcome]:
        with self._lock:
            self._sweep(now)
            return [
                peek(self._load((op.slot, op.field)), now, Step(op.algorithm, op.params, op.cost))
                for op in ops
            ]

    def reset(self, targets: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            for key in targets:
                self._states.pop(key, None)

    def top_up(self, now: int, op: Op, amount: int) -> int:
        with self._lock:
            key = (op.slot, op.field)
            state = Balance.top_up(self._load(key), op.params, amount)
            self._store(key, state, None, now)
            return state[0]

    def read_states(self, ops: Sequence[Op]) -> list[State]:
        with self._lock:
            return [self._load((op.slot, op.field)) for op in ops]

    def close(self) -> None:
        """Nothing to release; state stays readable until the object is dropped."""

    # -- introspection (tests, the CLI) ------------------------------------------------------

    def dump(self) -> dict[Key, State]:
        """A copy of every stored state, for tests and differential checks."""
        with self._lock:
            return {k: v[0] for k, v in self._states.items()}

    def __len__(self) -> int:
        return len(self._states) + len(self._records)


class AsyncMemoryBackend:
    """The in-memory engine behind coroutines: operations never block, so they run inline."""

    def __init__(self, engine: MemoryBackend | None = None) -> None:
        self.engine = engine if engine is not None else MemoryBackend()

    @classmethod
    def from_url(cls, url: str) -> AsyncMemoryBackend:
        return cls()

    async def acquire(
        self, now: int, slot: str, ops: Sequence[Op], request_id: str | None, ttl_ms: int
    ) -> Verdict:
        return self.engine.acquire(now, slot, ops, request_id, ttl_ms)

    async def settle(
        self, now: int, slot: str, request_id: str, actual: Mapping[str, int] | None
    ) -> bool:
        return self.engine.settle(now, slot, request_id, actual)

    async def settle_charges(
        self, now: int, charges: Sequence[Charge], actual: Mapping[str, int] | None
    ) -> None:
        self.engine.settle_charges(now, charges, actual)

    async def peek(self, now: int, ops: Sequence[Op]) -> list[Outcome]:
        return self.engine.peek(now, ops)

    async def reset(self, targets: Sequence[tuple[str, str]]) -> None:
        self.engine.reset(targets)

    async def top_up(self, now: int, op: Op, amount: int) -> int:
        return self.engine.top_up(now, op, amount)

    async def read_states(self, ops: Sequence[Op]) -> list[State]:
        return self.engine.read_states(ops)

    async def close(self) -> None:
        self.engine.close()
