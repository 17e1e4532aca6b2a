"""The block cache: denials remembered in-process, so a client that is known to be blocked is
denied again without a round trip to the store.

A denial of ``cost`` by one limit at ``now`` with a finite ``retry_after`` means that limit denies
any cost at least as large until ``now + retry_after``, unless something is refunded first. So a
later request whose op on that (slot, field) costs at least as much is denied locally until then:
exact for the strict sliding window (the retry-after is computed from its log, not the window's
end), the token bucket and fixed or calendar windows. Refunds made in this process (settle,
release, reset, top-up) forget the slot's entries at once; a refund made by another process is seen
when the entry expires, so the cache can only under-admit, never over-admit, and for at most
``max_ms``. Concurrency limits (freed by any process's release), balances and allowances (no
finite retry) are never cached. A denial in a shared slot (global, or a group's: an org's daily
cap) holds for every account counted there, so it is remembered once for all of them.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from .algorithms import Outcome, Params
from .backends.base import Op
from .backends.planned import PlannedOps

#: Algorithms whose denial is monotone until its retry-after, refunds aside.
CACHEABLE = frozenset({"sliding_window", "token_bucket", "fixed_window", "calendar"})


@dataclass(frozen=True, slots=True)
class Block:
    """One limit's remembered denial: until when, for which cost, what the engine said."""

    until: int  # epoch ms
    cost: int
    capacity: int  # a larger cost can never pass: the store says so (retry_after None)
    params: Params  # the same limit and window (a plan change or a new window is a miss)
    remaining: int
    reset_at: int  # epoch ms when the meter is fully replenished


class BlockCache:
    """(slot, field) -> the latest denial, per process. Thread-safe, bounded."""

    def __init__(self, max_ms: int = 60_000, size: int = 100_000) -> None:
        self.max_ms = max_ms
        self.size = size
        self.slots: dict[str, dict[str, Block]] = {}  # slot -> field -> its block
        self._count = 0
        self._lock = threading.Lock()
        self.hits = 0

    def __len__(self) -> int:
        return self._count

    def check(self, now: int, ops: Sequence[Op]) -> tuple[int, Block] | None:
        """The live block that binds longest among ``ops`` with its op's index, or None (go
        to the store)."""
        if not self.slots:
            return None
        if type(ops) is PlannedOps and self.slots.keys().isdisjoint(ops.targets.slots):
            return None  # nothing blocked in any slot these ops touch
        found: tuple[int, Block] | None = None
        for i, op in enumerate(ops):
            fields = self.slots.get(op.slot)
            block = fields.get(op.field) if fields else None
            if (
                block is None
                or not block.cost <= op.cost <= block.capacity
                or op.params != block.params
            ):
                continue
            if now >= block.until:
                self._drop(op.slot, op.field)
                continue
            if found is None or block.until > found[1].until:
                found = (i, block)
        if found is not None:
            self.hits += 1
        return found

    def record(
        self,
        now: int,
        ops: Sequence[Op],
        outcomes: Sequence[Outcome],
        capacities: Sequence[int],
        shadow: Collection[int] = (),
    ) -> None:
        """Remember every cacheable denial among an engine's outcomes (the ops at the indexes
        in ``shadow`` never deny, so they are not remembered)."""
        for i, (op, out) in enumerate(zip(ops, outcomes, strict=True)):
            retry = out.retry_after
            if out.allowed or not retry or op.algorithm not in CACHEABLE or i in shadow:
                continue
            until = now + min(retry, self.max_ms)
            reset_at = now + out.reset_after
            block = Block(until, op.cost, capacities[i], op.params, out.remaining, reset_at)
            with self._lock:
                if self._count >= self.size:
                    self.slots.clear()
                    self._count = 0
                fields = self.slots.setdefault(op.slot, {})
                self._count += op.field not in fields
                fields[op.field] = block

    def forget(self, slots: Iterable[str]) -> None:
        """Drop every block of these slots: something there was refunded or reset."""
        if not self.slots:
            return
        with self._lock:
            for slot in slots:
                fields = self.slots.pop(slot, None)
                if fields:
                    self._count -= len(fields)

    def _drop(self, slot: str, field: str) -> None:
        with self._lock:
            fields = self.slots.get(slot)
            if fields and fields.pop(field, None) is not None:
                self._count -= 1
                if not fields:
                    del self.slots[slot]
