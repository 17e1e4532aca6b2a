"""What answers while the store fails: each limit's ``on_error`` policy.

``allow``: the limit is not enforced (its outcome says allowed; ``remaining`` is the upper bound
``capacity - cost``, the store's count being unknown). ``deny``: the request is refused with a
short retry. ``local``: an in-process memory engine with the same operations decides, from what
it has counted itself since the store started failing. A decision mixes them: any ``deny`` limit
refuses the request (and nothing is charged locally); otherwise the ``local`` limits decide, all
or nothing, and the ``allow`` limits pass.

Charges made without the store are remembered (bounded, for the reservation TTL) so that
settling them never reaches the store: a local charge settles locally, an ``allow`` charge was
never made anywhere and settles to nothing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from ..algorithms import Charge, Outcome
from .base import Op, Verdict
from .memory import MemoryBackend

if TYPE_CHECKING:
    from ..catalog import Catalog

Policy = Literal["allow", "deny", "local"]
POLICIES: tuple[str, ...] = ("allow", "deny", "local")

#: Most charges remembered as made without the store (oldest forgotten first).
MAX_REMEMBERED = 100_000


def default_policy(algorithm: str, on_error: str | None) -> Policy:
    """A limit's policy when its plan file says none: the limiter's, else deny for balances
    (prepaid credits fail closed) and allow for everything else. Usage history never denies."""
    if algorithm == "history":
        return "local" if on_error == "local" else "allow"
    if on_error in POLICIES:
        return on_error  # type: ignore[return-value]
    return "deny" if algorithm == "balance" else "allow"


def policies(catalog: Catalog, on_error: str | None) -> dict[str, Policy]:
    """Limit name -> policy (the catalog keeps one ``on_error`` per limit name across plans)."""
    out: dict[str, Policy] = {}
    for plan in catalog.plans.values():
        for lim in plan.limits:
            own = getattr(lim, "on_error", None)
            out[lim.name] = own if own is not None else default_policy(lim.algorithm, on_error)
    return out


def capacity(op: Op) -> int:
    """The most the op's limit holds, from its params (token buckets keep it third)."""
    if op.algorithm == "token_bucket":
        return op.params[2]
    if op.algorithm == "history" or not op.params:
        return 0
    return op.params[0]


class Fallback:
    """The failure policy of one limiter: policy lookup, synthesized outcomes, local engine."""

    def __init__(
        self, policies: Mapping[str, Policy], on_error: str | None, retry_after: float = 1.0
    ) -> None:
        self.policies = dict(policies)
        self.on_error = on_error
        self.retry_ms = max(1, round(retry_after * 1000))
        self.local = MemoryBackend()
        self._made: OrderedDict[Charge, tuple[bool, int, int]] = OrderedDict()  # local?, n, exp
        self._lock = threading.Lock()

    def policy(self, op: Op) -> Policy:
        name = op.field.split("/", 1)[0]
        found = self.policies.get(name)
        if found is None:
            found = self.policies[name] = default_policy(op.algorithm, self.on_error)
        return found

    def allowed(self, op: Op) -> Outcome:
        return Outcome(True, max(capacity(op) - op.cost, 0), 0, 0, 0)

    def denied(self) -> Outcome:
        return Outcome(False, 0, self.retry_ms, self.retry_ms, 0)

    # -- acquire and peek --------------------------------------------------------------------

    def acquire(
        self, now: int, slot: str, ops: Sequence[Op], request_id: str | None, ttl_ms: int
    ) -> Verdict:
        """The policy's verdict, in the order of ``ops`` (as the planner zips them)."""
        kinds = [self.policy(op) for op in ops]
        local = [op for op, k in zip(ops, kinds, strict=True) if k == "local"]
        fields = tuple(op.field for op in ops)
        if "deny" in kinds:
            seen = iter(self.local.peek(now, local)) if local else iter(())
            outcomes = tuple(
                self.denied() if k == "deny" else next(seen) if k == "local" else self.allowed(op)
                for op, k in zip(ops, kinds, strict=True)
            )
            return Verdict(False, outcomes, fields, source="deny")
        if not local:
            outcomes = tuple(self.allowed(op) for op in ops)
            if request_id is None:
                self._remember(now, ops, outcomes, kinds, ttl_ms)
            return Verdict(True, outcomes, fields, source="allow")
        got = self.local.acquire(now, slot, local, request_id, ttl_ms)
        by_field = dict(zip(got.fields, got.outcomes, strict=True))
        outcomes = tuple(
            by_field[op.field] if k == "local" else self.allowed(op)
            for op, k in zip(ops, kinds, strict=True)
        )
        if got.allowed and request_id is None and not got.replayed:
            self._remember(now, ops, outcomes, kinds, ttl_ms)
        return Verdict(got.allowed, outcomes, fields, replayed=got.replayed, source="local")

    def peek(self, now: int, ops: Sequence[Op]) -> list[Outcome]:
        kinds = [self.policy(op) for op in ops]
        local = [op for op, k in zip(ops, kinds, strict=True) if k == "local"]
        seen = iter(self.local.peek(now, local)) if local else iter(())
        return [
            self.denied() if k == "deny" else next(seen) if k == "local" else self.allowed(op)
            for op, k in zip(ops, kinds, strict=True)
        ]

    # -- charges made without the store ------------------------------------------------------

    def _remember(
        self, now: int, ops: Sequence[Op], outcomes: Sequence[Outcome], kinds: Sequence[str],
        ttl_ms: int,
    ) -> None:  # fmt: skip
        made = self._made
        with self._lock:
            while made and (len(made) >= MAX_REMEMBERED or next(iter(made.values()))[2] <= now):
                made.popitem(last=False)
            for op, out, kind in zip(ops, outcomes, kinds, strict=True):
                key = Charge(
                    op.slot, op.field, op.meter, op.algorithm, op.params, out.anchor, op.cost
                )
                entry = made.get(key)
                made[key] = (kind == "local", (entry[1] if entry else 0) + 1, now + ttl_ms)

    def split(self, charges: Sequence[Charge]) -> tuple[list[Charge], list[Charge]]:
        """(charges the local engine made, charges the store made); ``allow`` charges, made
        nowhere, are in neither."""
        if not self._made:
            return [], list(charges)
        local: list[Charge] = []
        store: list[Charge] = []
        with self._lock:
            for c in charges:
                entry = self._made.get(c)
                if entry is None:
                    store.append(c)
                    continue
                if entry[1] > 1:
                    self._made[c] = (entry[0], entry[1] - 1, entry[2])
                else:
                    del self._made[c]
                if entry[0]:
                    local.append(c)
        return local, store

    def settle(
        self, now: int, slot: str, request_id: str, actual: Mapping[str, int] | None
    ) -> bool:
        """Settle a reservation the local engine recorded; False when it has none."""
        return len(self.local) > 0 and self.local.settle(now, slot, request_id, actual)
