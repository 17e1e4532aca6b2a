"""The memory engine's storage: one ``Cell`` per (slot, field), swept when it expires.

A cell holds a state in its algorithm's working form (the flat tuple, or an ``InPlace``
algorithm's mutable form, which the engine charges in place), the algorithm that wrote it and
the params it was last written with: all that its expiry needs. Expiry is computed when a
cell is stored and again when its heap entry comes due; a state written since may live
longer, and is rescheduled. Callers hold the engine's lock.
"""

from __future__ import annotations

import heapq
from typing import Any

from ..algorithms import Algorithm, Outcome, Params, State

Key = tuple[str, str]


class Cell:
    """One stored state: its form, the algorithm that wrote it, its last params."""

    __slots__ = ("algo", "form", "params")

    def __init__(self, form: Any, algo: Algorithm, params: Params) -> None:
        self.form = form
        self.algo = algo
        self.params = params

    def state(self) -> State:
        """The flat state."""
        return self.form.state() if self.algo.form is not None else self.form  # type: ignore[no-any-return]

    def expiry(self) -> int | None:
        return self.algo.expiry(self.state(), self.params)


def outcome(cell: Cell | None, algo: Algorithm, now: int, p: Params, cost: int) -> Outcome:
    """What ``algo`` says of ``cost`` against the cell's state, changing nothing."""
    if cell is not None and cell.algo is not algo:  # written by another algorithm
        return algo.acquire(cell.state(), now, p, cost)[1]
    if algo.form is not None:
        form = cell.form if cell is not None else algo.empty  # type: ignore[attr-defined]
        return algo.check(form, now, p, cost)  # type: ignore[attr-defined, no-any-return]
    return algo.acquire(cell.form if cell is not None else (), now, p, cost)[1]


class Cells(dict[Key, Cell]):
    """(slot, field) -> Cell, with a heap of (expiry, key) that sweeps expired cells. At most
    one heap entry per key (``scheduled``)."""

    def __init__(self) -> None:
        super().__init__()
        self.heap: list[tuple[int, Key]] = []
        self.scheduled: dict[Key, int] = {}

    def load(self, key: Key) -> State:
        cell = self.get(key)
        return cell.state() if cell is not None else ()

    def put(self, key: Key, state: State, algo: Algorithm, params: Params, now: int) -> None:
        """Store ``state`` (in ``algo``'s form), or drop the key when it is empty or expired."""
        expiry = algo.expiry(state, params) if state else 0
        if not state or (expiry is not None and expiry <= now):
            self.pop(key, None)
            return
        self[key] = Cell(state if algo.form is None else algo.form(state), algo, params)
        self.schedule(key, expiry)

    def adopt(self, key: Key, cell: Cell, algo: Algorithm) -> Cell | None:
        """The cell of a state another algorithm (or instance) wrote, now in ``algo``'s form;
        None when it holds nothing."""
        state = cell.state()
        if not state:
            del self[key]
            return None
        cell.form = state if algo.form is None else algo.form(state)
        cell.algo = algo
        return cell

    def move(self, key: Key, to: Key) -> None:
        """Store the cell at ``key`` under ``to`` instead (rotating a hashing secret)."""
        cell = self.pop(key)
        self[to] = cell
        self.schedule(to, cell.expiry())

    def schedule(self, key: Key, expiry: int | None) -> None:
        if expiry is not None and key not in self.scheduled:
            self.scheduled[key] = expiry
            heapq.heappush(self.heap, (expiry, key))

    def sweep(self, now: int) -> None:
        """Drop every cell expired at ``now``; reschedule those written since."""
        heap = self.heap
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            del self.scheduled[key]
            cell = self.get(key)
            if cell is None:
                continue
            expiry = cell.expiry()
            if expiry is None:
                continue
            if expiry > now:
                self.scheduled[key] = expiry
                heapq.heappush(heap, (expiry, key))
                continue
            del self[key]
