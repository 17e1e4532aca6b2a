"""Templates: an acquire's ops planned once, valid until the earliest window boundary.

Per (principal, cost names, model, features), everything the planner computes for an
acquire except ``now`` and the amounts: the plan, the rules that apply, the account's slot,
the ops addressed to their storage fields with their window params (``heads``), and the span
of time ``[since, until)`` within which those params hold. An acquire inside that span looks
its template up and splices its amounts in; ``PlannedOps`` for a repeated cost vector are
reused whole (bounded per template).
"""

from __future__ import annotations

from typing import Any

from .algorithms import MAX_SAFE
from .backends.base import Op
from .backends.planned import PlannedOps, Targets
from .catalog import Plan, Principal
from .rules import Rule, window_of

#: Most cost vectors remembered per template (cleared whole when full): a cost vector that
#: repeats reuses its ops; one seen once (a token estimate) costs a splice of about 1 µs.
SPLICES = 4

#: Bounds of a template whose params hold at any time.
FOREVER = (-(2**63), 2**63)


class Template:
    """One acquire's plan, costs aside; ``memo`` holds what consumers derive once per
    template (keyed by their own names).

    ``positions[i]`` is the index, among the amounts of a cost (in the order of the cost names
    the template was built for), of the amount the ``i``-th rule charges; None when two names
    of the cost are one meter (aliases add up: such costs take the validating path).
    """

    __slots__ = (
        "_planned",
        "memo",
        "plan",
        "positions",
        "rules",
        "shadow",
        "since",
        "slot",
        "targets",
        "until",
    )

    def __init__(
        self,
        plan: Plan,
        rules: tuple[Rule, ...],
        slot: str,
        heads: tuple[Op, ...],
        positions: tuple[int, ...] | None,
    ) -> None:
        self.plan = plan
        self.rules = rules
        self.slot = slot
        self.positions = positions
        self.shadow = frozenset(r.name for r in rules if r.shadow)
        self.targets = Targets(heads)
        self.since, self.until = FOREVER
        for rule, head in zip(rules, heads, strict=True):
            span = window_of(rule, head.params)
            if span is not None:
                self.since = max(self.since, span[0])
                self.until = min(self.until, span[1])
        self.memo: dict[object, Any] = {}
        self._planned: dict[tuple[object, ...], PlannedOps] = {}

    def planned(self, values: tuple[object, ...]) -> PlannedOps | None:
        """The ops for a cost whose amounts (in the order of the template's cost names) are
        ``values``; None when the template cannot vouch for them (an amount that is not a
        plain int from 0 to MAX_SAFE, aliases to add up): the validating path decides."""
        ops = self._planned.get(values)
        if ops is not None:
            for v in values:
                if type(v) is not int:  # 1.0 == 1 and True == 1: equal, not valid
                    return None
            return ops
        positions = self.positions
        if positions is None:
            return None
        for v in values:
            if type(v) is not int or not 0 <= v <= MAX_SAFE:
                return None
        return self._remember(values, tuple([values[i] for i in positions]))  # type: ignore[misc]

    def splice(self, values: tuple[object, ...], amounts: dict[str, int]) -> PlannedOps:
        """The ops for the validated ``amounts`` (meter -> amount) of a cost whose values are
        ``values``."""
        return self._remember(values, tuple([amounts[r.meter] for r in self.rules]))

    def _remember(self, values: tuple[object, ...], costs: tuple[int, ...]) -> PlannedOps:
        ops = PlannedOps.build(self.targets, costs)
        if len(self._planned) >= SPLICES:
            self._planned.clear()
        self._planned[values] = ops
        return ops


def positions(
    names: tuple[str, ...], meters: dict[str, str], rules: tuple[Rule, ...]
) -> tuple[int, ...] | None:
    """``Template.positions`` for a cost naming ``names`` (``meters``: name -> its meter)."""
    of = [meters[n] for n in names]
    if len(set(of)) < len(of):
        return None
    return tuple(of.index(r.meter) for r in rules)


class Prepared:
    """A decision ready for the engine: the rules and the ops that address them (and the
    template they came from, None when they were changed after planning)."""

    __slots__ = (
        "now",
        "ops",
        "plan",
        "request_id",
        "rules",
        "shadow",
        "shadow_denied",
        "slot",
        "template",
        "who",
    )

    def __init__(
        self,
        who: Principal,
        plan: Plan,
        rules: tuple[Rule, ...],
        ops: tuple[Op, ...],
        now: int,
        request_id: str | None,
        slot: str,
        shadow: frozenset[str] = frozenset(),
        shadow_denied: tuple[str, ...] = (),
        template: Template | None = None,
    ) -> None:
        self.who = who
        self.plan = plan
        self.rules = rules  # the rules that apply, in the order of ``ops``
        self.ops = ops
        self.now = now
        self.request_id = request_id
        self.slot = slot
        self.shadow = shadow  # names of the shadow limits among ``rules``
        self.shadow_denied = shadow_denied  # shadow limits that denied an earlier try
        self.template = template

    def __repr__(self) -> str:
        return f"Prepared({self.who!r}, plan={self.plan.name!r}, ops={self.ops!r}, now={self.now})"
