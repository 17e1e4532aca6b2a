"""The one definition of every algorithm, and of the all-or-nothing decision over several limits.

Engines (the memory backend, the Redis Lua scripts) must reproduce these functions exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol

from .balance import Balance
from .base import MAX_SAFE, Algorithm, Form, InPlace, Outcome, Params, State, ceil_div
from .buckets import TokenBucket
from .counters import Allowance, WindowCounter
from .history import History
from .logs import Concurrency, Log, SlidingWindow

#: Algorithm name (as written in plan files) -> its step functions. ``fixed_window`` and
#: ``calendar`` share one engine: they differ only in how the caller computes the window.
ALGORITHMS: dict[str, Algorithm] = {
    "sliding_window": SlidingWindow(),
    "token_bucket": TokenBucket(),
    "fixed_window": WindowCounter(),
    "calendar": WindowCounter(),
    "allowance": Allowance(),
    "balance": Balance(),
    "concurrency": Concurrency(),
    "history": History(),
}


class Step(NamedTuple):
    """One limit's part of a decision: which algorithm, with which params, for which cost."""

    algorithm: str
    params: Params
    cost: int


class StepLike(Protocol):
    """Anything that names an algorithm, its params and a cost (a ``Step``, an engine's op)."""

    @property
    def algorithm(self) -> str: ...

    @property
    def params(self) -> Params: ...

    @property
    def cost(self) -> int: ...


def decide(
    states: Sequence[State], now: int, steps: Sequence[StepLike]
) -> tuple[bool, list[Outcome], list[State]]:
    """Evaluate every step; charge all of them or none.

    Returns ``(allowed, outcomes, new_states)``. When any step denies, ``new_states`` equals
    ``states`` unchanged and the outcomes of the steps that would have admitted report their
    state before the charge, so every figure describes what is really stored.
    """
    results = [
        ALGORITHMS[s.algorithm].acquire(st, now, s.params, s.cost)
        for st, s in zip(states, steps, strict=True)
    ]
    if all(o.allowed for _, o in results):
        return True, [o for _, o in results], [st for st, _ in results]
    outcomes = [
        o if not o.allowed else ALGORITHMS[s.algorithm].acquire(st, now, s.params, 0)[1]
        for (_, o), st, s in zip(results, states, steps, strict=True)
    ]
    return False, outcomes, list(states)


def peek(state: State, now: int, step: Step) -> Outcome:
    """What the limit would say about ``step.cost`` now, charging nothing."""
    return ALGORITHMS[step.algorithm].acquire(state, now, step.params, step.cost)[1]


class Charge(NamedTuple):
    """What an admitted step charged: kept in the reservation record to settle it later."""

    slot: str
    field: str
    meter: str
    algorithm: str
    params: Params
    anchor: int
    amount: int


def settle_all(
    states: Sequence[State],
    now: int,
    charges: Sequence[Charge],
    actual: Mapping[str, int] | None,
) -> list[State]:
    """Settle every charge of one reservation: to ``actual[meter]`` where given (other meters
    keep their estimate), or release everything when ``actual`` is None."""
    out = []
    for st, c in zip(states, charges, strict=True):
        amount = 0 if actual is None else actual.get(c.meter, c.amount)
        out.append(ALGORITHMS[c.algorithm].settle(st, now, c.params, c.anchor, c.amount, amount))
    return out


__all__ = [
    "ALGORITHMS",
    "MAX_SAFE",
    "Algorithm",
    "Allowance",
    "Balance",
    "Charge",
    "Concurrency",
    "Form",
    "History",
    "InPlace",
    "Log",
    "Outcome",
    "Params",
    "SlidingWindow",
    "State",
    "Step",
    "StepLike",
    "TokenBucket",
    "WindowCounter",
    "ceil_div",
    "decide",
    "peek",
    "settle_all",
]
