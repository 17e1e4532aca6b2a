"""Shared vocabulary of the pure step functions.

Every algorithm is a set of pure functions over a *state* (a flat tuple of integers; ``()`` is
"nothing stored"), an integer clock ``now`` in epoch milliseconds and integer *params*. The memory
engine runs these functions; the Redis engine runs a Lua transcription of them. Keeping every value
an integer below 2**53 makes Lua's doubles agree with Python to the last unit.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

State = tuple[int, ...]
Params = tuple[int, ...]

#: Largest integer that Lua (IEEE doubles) represents exactly; every state and param stays below it.
MAX_SAFE = 2**53 - 1


class Outcome(NamedTuple):
    """What one limit says about one cost at one instant.

    ``remaining``: what is left after this cost when allowed, before it when denied.
    ``reset_after``: ms until the meter is fully replenished (0 when nothing is used).
    ``retry_after``: ms until this cost would be admitted; 0 when allowed, None when never.
    ``anchor``: where the charge landed (a window start, a log time), used to settle it later.
    """

    allowed: bool
    remaining: int
    reset_after: int
    retry_after: int | None
    anchor: int = 0


class Algorithm(Protocol):
    """The four operations every algorithm defines.

    ``form`` is None, or (``InPlace``) the class of a mutable working form of the state that an
    engine may keep between calls instead of the flat tuple.
    """

    @property
    def form(self) -> type[Form] | None: ...

    def acquire(self, state: State, now: int, p: Params, cost: int) -> tuple[State, Outcome]:
        """Admit ``cost`` or not; the new state is meaningful only when allowed."""
        ...

    def settle(
        self, state: State, now: int, p: Params, anchor: int, charged: int, actual: int
    ) -> State:
        """Turn a charge of ``charged`` made at ``anchor`` into ``actual`` (0 = release)."""
        ...

    def expiry(self, state: State, p: Params) -> int | None:
        """Epoch ms after which the state is garbage (equal to no state); None = never."""
        ...


def ceil_div(a: int, b: int) -> int:
    """Ceiling of a / b for b > 0, in integers (Lua: ``-((-a) // b)`` is ``math.floor``-based)."""
    return -((-a) // b)


class Form(Protocol):
    """A state's mutable working form: built from the flat state, flattened back."""

    def __init__(self, state: State = ()) -> None: ...

    def state(self) -> State:
        """The flat state."""
        ...


class InPlace(Algorithm, Protocol):
    """An algorithm in two halves over its working form, so that an engine holding forms can
    decide every limit of a request before changing any: ``check`` changes nothing,
    ``commit`` charges a cost that ``check`` admitted at the same ``now``, in place, and says
    whether anything remains stored. ``acquire`` is the two over a flat state."""

    @property
    def empty(self) -> Any:
        """The form of no state, to check against (never committed into)."""
        ...

    def check(self, form: Any, now: int, p: Params, cost: int) -> Outcome: ...

    def commit(self, form: Any, now: int, p: Params, cost: int) -> bool: ...
