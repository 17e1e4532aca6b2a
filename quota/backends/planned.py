"""Ops that come pre-addressed: what the planner's templates hand the engines.

A ``Targets`` is the part of an acquire that stays fixed while a template is valid (storage
keys, fields, algorithms, params); ``PlannedOps`` is one acquire's ops: a plain tuple of
``Op`` (every engine can read it as any sequence of ops) that also carries its ``Targets``
and its costs, so an engine that knows them skips re-addressing every op.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..algorithms import ALGORITHMS, Algorithm, InPlace, Outcome, Params
from .base import Op

#: One op as the in-process engine runs it: ((slot, field), algorithm, params, its ``acquire``,
#: its ``check`` when it has a working form (``InPlace``) else None, the form of no state).
Step = tuple[
    tuple[str, str], Algorithm, Params, Callable[..., Any], Callable[..., Outcome] | None, Any
]


def steps(ops: Sequence[Op]) -> tuple[Step, ...]:
    """The ``Step`` of each op."""
    out: list[Step] = []
    for op in ops:
        algo = ALGORITHMS[op.algorithm]
        key = (op.slot, op.field)
        if algo.form is None:
            out.append((key, algo, op.params, algo.acquire, None, ()))
        else:
            inplace: InPlace = algo  # type: ignore[assignment]
            out.append((key, algo, op.params, algo.acquire, inplace.check, inplace.empty))
    return tuple(out)


class Targets:
    """Where one template's ops land, and how the in-process engine runs them (``steps``).
    ``memo`` is for other engines: data they derive once per template (encoded arguments,
    say), keyed by the engine's own object."""

    __slots__ = ("fields", "heads", "memo", "slots", "steps")

    def __init__(self, ops: Sequence[Op]) -> None:
        #: Each op but its cost: (slot, field, meter, algorithm, params).
        self.heads: tuple[tuple[str, str, str, str, Params], ...] = tuple(op[:5] for op in ops)
        self.fields: tuple[str, ...] = tuple(op.field for op in ops)
        self.steps = steps(ops)
        self.slots: frozenset[str] = frozenset(op.slot for op in ops)
        self.memo: dict[object, Any] = {}


class PlannedOps(tuple[Op, ...]):
    """The ops of one acquire, with the ``Targets`` they share with every acquire of their
    template and their ``costs`` (one per op, in order)."""

    targets: Targets
    costs: tuple[int, ...]

    @staticmethod
    def build(targets: Targets, costs: tuple[int, ...]) -> PlannedOps:
        """The ops of ``targets`` (each op but its cost: ``heads``) with ``costs`` spliced in."""
        new = _new_op
        # zip without strict=: one cost per op by construction, and the keyword costs 0.1 µs
        ops = PlannedOps([new(Op, (*head, cost)) for head, cost in zip(targets.heads, costs)])  # noqa: B905
        ops.targets = targets
        ops.costs = costs
        return ops


_new_op = tuple.__new__  # Op(...) from a tuple, without the keyword handling
