"""The storage protocol every engine implements, sync and async.

An engine receives fully computed operations (slot, field, algorithm, integer params, cost) and
runs the pure functions of ``quota.algorithms`` over its stored states atomically. It knows
nothing of plans, calendars or HTTP, which is what keeps the Lua transcription small.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol

from ..algorithms import Charge, Outcome, Params, State


class Op(NamedTuple):
    """One limit's part of a decision, addressed by storage slot and field."""

    slot: str
    field: str
    meter: str
    algorithm: str
    params: Params
    cost: int


class Verdict(NamedTuple):
    """An engine's answer to one acquire: all charged or none, one outcome per op.

    ``replayed``: the request id was seen before; the first verdict is returned and nothing is
    charged. ``fields`` names the op each outcome belongs to (a replay may differ in ops).
    ``source``: who answered (see ``Decision.source``); engines leave ``"engine"``.
    """

    allowed: bool
    outcomes: tuple[Outcome, ...]
    fields: tuple[str, ...]
    replayed: bool = False
    source: str = "engine"


class Backend(Protocol):
    """A synchronous engine."""

    def acquire(
        self, now: int, slot: str, ops: Sequence[Op], request_id: str | None, ttl_ms: int
    ) -> Verdict:
        """Charge every op or none; record the reservation as ``(slot, request_id)`` (``slot``
        is the account's) for ``ttl_ms``, or replay the verdict already recorded there."""
        ...

    def settle(
        self, now: int, slot: str, request_id: str, actual: Mapping[str, int] | None
    ) -> bool:
        """Settle a reservation to ``actual`` per meter, or release it (None). False when the
        reservation is unknown, expired or already closed."""
        ...

    def settle_charges(
        self, now: int, charges: Sequence[Charge], actual: Mapping[str, int] | None
    ) -> None:
        """Settle charges that were not recorded (no request id): the caller settles once."""
        ...

    def peek(self, now: int, ops: Sequence[Op]) -> list[Outcome]:
        """Outcomes for the ops' costs, charging nothing."""
        ...

    def reset(self, targets: Sequence[tuple[str, str]]) -> None:
        """Delete the state stored at each (slot, field)."""
        ...

    def top_up(self, now: int, op: Op, amount: int) -> int:
        """Add ``amount`` to the balance ``op`` addresses; return the new balance."""
        ...

    def read_states(self, ops: Sequence[Op]) -> list[State]:
        """The raw stored state each op addresses (``()`` when none), changing nothing: how
        usage history is read."""
        ...

    def close(self) -> None: ...


class AsyncBackend(Protocol):
    """An asyncio engine: the same operations as coroutines."""

    async def acquire(
        self, now: int, slot: str, ops: Sequence[Op], request_id: str | None, ttl_ms: int
    ) -> Verdict: ...

    async def settle(
        self, now: int, slot: str, request_id: str, actual: Mapping[str, int] | None
    ) -> bool: ...

    async def settle_charges(
        self, now: int, charges: Sequence[Charge], actual: Mapping[str, int] | None
    ) -> None: ...

    async def peek(self, now: int, ops: Sequence[Op]) -> list[Outcome]: ...

    async def reset(self, targets: Sequence[tuple[str, str]]) -> None: ...

    async def top_up(self, now: int, op: Op, amount: int) -> int: ...

    async def read_states(self, ops: Sequence[Op]) -> list[State]: ...

    async def close(self) -> None: ...
