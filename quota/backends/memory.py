"""The in-process engine (``memory://``): runs the pure algorithms over a dict, under a lock.

Thread-safe (one lock; every operation is a few microseconds of pure Python) and asyncio-safe
(the async flavour never awaits while holding state). Memory stays bounded by active
principals: a heap sweeps what has expired (``quota.backends.cells``).

An acquire checks every limit before it changes any, then charges them all: in place for the
algorithms with a working form (the sliding window's log), as a new flat state for the others.
Ops planned from a template (``PlannedOps``) come with their storage keys, algorithms and
params resolved, so an acquire only looks its cells up.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..algorithms import ALGORITHMS, Balance, Charge, Outcome, State, settle_all
from ..algorithms.thresholds import MARK, WATCH, Crossing, Markers
from .base import Op, Verdict
from .cells import Cell, Cells, Key, outcome
from .planned import PlannedOps, Step, steps

_new_verdict = tuple.__new__


class Alerted(Verdict):
    """A verdict that newly reached alert thresholds (``quota.algorithms.thresholds``): the
    engines answer a watched acquire with one when ``crossings`` is not empty."""

    crossings: tuple[Crossing, ...] = ()

    @classmethod
    def of(cls, verdict: Verdict, crossings: list[Crossing]) -> Verdict:
        """``verdict``, carrying ``crossings`` when there are any."""
        if not crossings:
            return verdict
        out = cls(*verdict)
        out.crossings = tuple(crossings)
        return out


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
        self._states = Cells()
        self._records: dict[Key, _Record] = {}
        self._record_heap: list[tuple[int, Key]] = []
        self._marks = Markers()  # alert markers: only watched acquires look at them

    @classmethod
    def from_url(cls, url: str) -> MemoryBackend:
        return cls()

    def _sweep(self, now: int) -> None:
        self._states.sweep(now)
        rheap = self._record_heap
        while rheap and rheap[0][0] <= now:
            _, rid = heapq.heappop(rheap)
            rec = self._records.get(rid)
            if rec is not None and rec.expires <= now:
                del self._records[rid]

    # -- acquire -----------------------------------------------------------------------------

    def acquire(
        self, now: int, slot: str, ops: Sequence[Op], request_id: str | None, ttl_ms: int
    ) -> Verdict:
        with self._lock:
            heap, rheap = self._states.heap, self._record_heap
            if (heap and heap[0][0] <= now) or (rheap and rheap[0][0] <= now):
                self._sweep(now)
            if request_id is not None:
                rec = self._records.get((slot, request_id))
                if rec is not None:
                    v = rec.verdict
                    return Verdict(v.allowed, v.outcomes, v.fields, replayed=True)
            if type(ops) is PlannedOps:
                t = ops.targets
                verdict = self._decide(now, t.steps, ops.costs, t.fields)
                memo = t.memo
                if memo and WATCH in memo and verdict.allowed:
                    found = self._marks.watch(now, ops, memo[WATCH], verdict.outcomes)
                    verdict = Alerted.of(verdict, found)
            else:
                costs, fields = tuple(op.cost for op in ops), tuple(op.field for op in ops)
                verdict = self._decide(now, steps(ops), costs, fields)
            if request_id is not None and verdict.allowed:
                self._record(now, slot, ops, verdict, request_id, ttl_ms)
            return verdict

    def _decide(
        self, now: int, steps: Sequence[Step], costs: Sequence[int], fields: tuple[str, ...]
    ) -> Verdict:
        """Every limit's outcome, then (all admitted) every charge; a denial changes nothing,
        and the outcomes of the limits that would have admitted report their state before
        the charge (``quota.algorithms.decide``).

        A state an admitted acquire writes never expires at ``now`` (every algorithm's expiry
        lies past it), so only emptiness deletes."""
        cells = self._states
        get = cells.get
        # Per op: its cell, and its new flat state (or the form a commit charges in place).
        found: list[tuple[Cell | None, Any]] = []
        outcomes: list[Outcome] = []
        allowed = True
        # zip without strict=: the lengths agree by construction, and the keyword costs 0.1 µs
        for (key, algo, p, acquire, check, empty), cost in zip(steps, costs):  # noqa: B905
            cell = get(key)
            if cell is not None and cell.algo is not algo:
                cell = cells.adopt(key, cell, algo)
            form = cell.form if cell is not None else empty
            if check is None:
                new, out = acquire(form, now, p, cost)
            else:
                out, new = check(form, now, p, cost), form
            found.append((cell, new))
            outcomes.append(out)
            if not out[0]:
                allowed = False
        if not allowed:
            return Verdict(False, self._before(now, found, steps, outcomes), fields)
        for (key, algo, p, _, check, _), cost, (cell, new) in zip(steps, costs, found):  # noqa: B905
            if check is not None:  # in place: ``new`` is the form checked
                if cell is None:
                    cell = Cell(algo.form(), algo, p)  # type: ignore[misc]
                    if algo.commit(cell.form, now, p, cost):  # type: ignore[attr-defined]
                        cells[key] = cell
                        cells.schedule(key, cell.expiry())
                elif algo.commit(new, now, p, cost):  # type: ignore[attr-defined]
                    cell.params = p
                else:
                    del cells[key]
            elif cell is not None:
                if new:
                    cell.form, cell.params = new, p
                else:
                    del cells[key]
            elif new:
                cells[key] = Cell(new, algo, p)
                cells.schedule(key, algo.expiry(new, p))
        return _new_verdict(Verdict, (True, tuple(outcomes), fields, False, "engine"))

    @staticmethod
    def _before(
        now: int,
        found: list[tuple[Cell | None, Any]],
        steps: Sequence[Step],
        outcomes: list[Outcome],
    ) -> tuple[Outcome, ...]:
        """A denial's outcomes: the limits that would have admitted report their state."""
        return tuple(
            o if not o.allowed else outcome(cell, step[1], now, step[2], 0)
            for (cell, _), step, o in zip(found, steps, outcomes, strict=True)
        )

    def _record(
        self,
        now: int,
        slot: str,
        ops: Sequence[Op],
        verdict: Verdict,
        request_id: str,
        ttl_ms: int,
    ) -> None:
        charges = tuple(
            Charge(op.slot, op.field, op.meter, op.algorithm, op.params, out.anchor, op.cost)
            for op, out in zip(ops, verdict.outcomes, strict=True)
        )
        self._records[(slot, request_id)] = _Record(charges, verdict, now + ttl_ms)
        heapq.heappush(self._record_heap, (now + ttl_ms, (slot, request_id)))

    # -- other operations --------------------------------------------------------------------

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
        new = settle_all([self._states.load(k) for k in keys], now, charges, actual)
        for key, c, state in zip(keys, charges, new, strict=True):
            self._states.put(key, state, ALGORITHMS[c.algorithm], c.params, now)

    def peek(self, now: int, ops: Sequence[Op]) -> list[Outcome]:
        with self._lock:
            self._sweep(now)
            get = self._states.get
            return [
                outcome(get((op.slot, op.field)), ALGORITHMS[op.algorithm], now, op.params, op.cost)
                for op in ops
            ]

    def reset(self, targets: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            for key in targets:
                self._states.pop(key, None)

    def top_up(self, now: int, op: Op, amount: int) -> int:
        with self._lock:
            key = (op.slot, op.field)
            state = Balance.top_up(self._states.load(key), op.params, amount)
            self._states.put(key, state, ALGORITHMS[op.algorithm], op.params, now)
            self._marks.pop((op.slot, op.field + MARK + "r"), None)  # "below" alerts re-arm
            return state[0]

    def read_states(self, ops: Sequence[Op]) -> list[State]:
        with self._lock:
            return [self._states.load((op.slot, op.field)) for op in ops]

    def close(self) -> None:
        """Nothing to release; state stays readable until the object is dropped."""

    # -- introspection (tests, the CLI) ------------------------------------------------------

    def dump(self) -> dict[Key, State]:
        """A copy of every stored state, for tests and differential checks."""
        with self._lock:
            return {k: cell.state() for k, cell in self._states.items()}

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
