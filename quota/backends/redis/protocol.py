"""The Redis engine's operations as flows (``calls``): generators shared by sync and async.

Each decision flow yields ``(keys, args)`` for one script call and receives its reply, so the
same logic drives a blocking client and an asyncio one (and the asyncio auto-batcher). On one
server a decision is ONE call, even with ``global`` limits and limits of the principal's groups
(a plain server runs a script over any keys): its slots are the account's, the global one, then
each group's. On Cluster, where a script sees one hash slot, a decision spanning several slots
runs the ordered reserve-then-release protocol: one call per slot, the account's first, then the
others in the order of the ops; when a later call denies, the earlier ones are undone (their
states put back exactly when nothing touched them since, else released), so the caller still
sees one all-or-nothing decision. Reading states with plain commands is ``reads``'s. A
reservation record names the other slots of its decision (``codec.linked``).
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from ...algorithms import Charge, Outcome
from ...algorithms.thresholds import WATCH, Crossing, Watch
from ...keys import GLOBAL_SLOT
from ..base import Op, Verdict
from ..memory import Alerted
from ..planned import PlannedOps
from . import codec
from .codec import CODES, FAST, Arg, Group, Layout, outcomes, verdict

Result = TypeVar("Result")
#: One script call: its keys and its arguments.
Call = tuple[list[str], list[Arg]]
#: An operation as the script calls it makes, ending with its result.
Flow = Generator[Call, Any, Result]
#: A template's fast call: keys, arguments, the positions of its costs, the fields replied.
FastShape = tuple[list[str], list[Arg], tuple[int, ...], list[str]]


def _actual(actual: Mapping[str, int] | None) -> tuple[str, list[Arg]]:
    """The script's spelling of a settlement: "release", or "settle" and meter/amount pairs."""
    if actual is None:
        return "release", []
    return "settle", [x for pair in actual.items() for x in pair]


def _home(slots: Sequence[str]) -> str:
    """The slot a call over ``slots`` is addressed from: the first one that is not global
    (the account's, where there is one), else the global slot."""
    return next((s for s in slots if s != GLOBAL_SLOT), GLOBAL_SLOT)


class Protocol:
    """Plans the script calls of every operation for one deployment shape."""

    def __init__(self, layout: Layout, cluster: bool) -> None:
        self.layout = layout
        self.cluster = cluster

    def slot_sets(self, slot: str, others: Iterable[str]) -> list[tuple[str, ...]]:
        """The slots of each call, the account's slot (``slot``) first: on one server, one
        call over the account's stores, the global ones, then each group's (in the order
        met); on Cluster, one call per slot."""
        slots = list(dict.fromkeys([slot, *others]))
        if self.cluster:
            return [(s,) for s in slots]
        home = _home(slots)
        if home == GLOBAL_SLOT:
            return [(GLOBAL_SLOT,)]
        return [(home, GLOBAL_SLOT, *(s for s in slots if s != home and s != GLOBAL_SLOT))]

    def groups(self, slot: str, ops: Sequence[Op]) -> list[Group]:
        """The calls ``ops`` need (see ``slot_sets``), each with its ops."""
        return [
            Group(slots, tuple(op for op in ops if op.slot in slots))
            for slots in self.slot_sets(slot, (op.slot for op in ops))
        ]

    def _record(self, group: Group, slot: str, request_id: str | None) -> str | None:
        if request_id is None:
            return None
        return self.layout.record(group.slots[0], slot, request_id)

    def fast(
        self, now: int, slot: str, ops: Sequence[Op], request_id: str | None
    ) -> tuple[Call, list[str]] | None:
        """The one call of an acquire that records nothing and spans one call's slots (the
        library's function serves it, or the script's ``FAST``), with the fields its reply
        answers for; None for any other acquire (``acquire`` plans it)."""
        if request_id is not None or not ops:
            return None
        if isinstance(ops, PlannedOps):  # a template's ops: addressed once per template
            memo = ops.targets.memo
            shape = memo[self] if self in memo else memo.setdefault(self, self._shape(slot, ops))
            if shape is None:
                return None
            keys, args, at, fields = shape
            args = [FAST, now, *args]
            for i, cost in zip(at, ops.costs):  # noqa: B905 - one position per op
                args[i] = cost
            return (keys, args), fields
        planned = self.groups(slot, ops)
        if len(planned) != 1:
            return None
        keys, args = planned[0].fast(self.layout)
        return (keys, [FAST, now, *args]), [op.field for op in ops]

    def _shape(self, slot: str, ops: Sequence[Op]) -> FastShape | None:
        """What ``fast`` sends for every acquire of one template: keys, arguments (costs
        included, overwritten per call), where the costs go, the fields; None when its
        acquire needs more than one call, or watches alert thresholds (``acquire`` sends it
        wrapped in the script's ``alerted``: the library's function and its arguments stay
        those of an acquire without alerts)."""
        if isinstance(ops, PlannedOps) and WATCH in ops.targets.memo:
            return None
        planned = self.groups(slot, ops)
        if len(planned) != 1:
            return None
        keys, args = planned[0].fast(self.layout)
        width = (len(args) - 1) // len(ops)  # each op's arguments, its cost last
        at = tuple(2 + width * (i + 1) for i in range(len(ops)))  # after FAST and now
        return keys, args, at, [op.field for op in ops]

    def acquire(
        self, now: int, slot: str, ops: Sequence[Op], request_id: str | None, ttl_ms: int
    ) -> Flow[Verdict]:
        if not ops and request_id is None:  # nothing to charge, nothing to record
            return Verdict(True, (), ())
        fast = self.fast(now, slot, ops, request_id)
        if fast is not None:
            return verdict((yield fast[0]), fast[1])
        planned = self.groups(slot, ops)
        # Slots without ops are skipped, but for the account's when there is a request id: a
        # replay finds the decision there (and an unlimited plan records its reservation).
        groups = [g for g in planned[1:] if g.ops]
        if planned[0].ops or request_id is not None:
            groups.insert(0, planned[0])
        if request_id is None and len(groups) > 1:
            # A later slot may deny: the earlier ones need a record to be undone exactly.
            request_id = f"~{uuid.uuid4().hex}"
        watches = ops.targets.memo.get(WATCH) if isinstance(ops, PlannedOps) else None
        return (yield from self._acquire_each(now, slot, ops, groups, request_id, ttl_ms, watches))

    @staticmethod
    def _watched(
        group: Group, ops: Sequence[Op], watches: Sequence[Watch] | None
    ) -> list[tuple[int, Watch, int]]:
        """The watches on ``group``'s ops: (op index within the call, watch, its index)."""
        if not watches:
            return []
        mine = [i for i, op in enumerate(ops) if op.slot in group.slots]
        within = {i: k for k, i in enumerate(mine)}
        return [(within[w.op], w, n) for n, w in enumerate(watches) if w.op in within]

    def _acquire_each(
        self,
        now: int,
        slot: str,
        ops: Sequence[Op],
        groups: list[Group],
        request_id: str | None,
        ttl_ms: int,
        watches: Sequence[Watch] | None = None,
    ) -> Flow[Verdict]:
        """Acquire ``groups`` one call each (records when ``request_id``), undoing the earlier
        calls when a later one denies (the ordered reserve-then-release protocol); each
        call with watched ops is wrapped in ``alerted`` (the same round trip)."""
        found: dict[tuple[str, str], Outcome] = {}
        replays: list[tuple[str, Outcome]] = []
        done: list[tuple[Group, str | None]] = []
        crossed: list[Crossing] = []
        for i, group in enumerate(groups):
            record = self._record(group, slot, request_id)
            if record is None:  # one call, nothing to record: the library's function
                keys, fast = group.fast(self.layout)
                args: list[Arg] = [FAST, now, *fast]
            else:
                links = codec.linked(group.slots, [g.slots[0] for g in groups[i + 1 :]])
                args = ["acquire", now, ttl_ms, links, *group.args()]
                keys = group.keys(self.layout, record)
            mine = self._watched(group, ops, watches)
            if mine:
                reply, more = yield keys, [*codec.watch_args(now, mine), *args]
                crossed += codec.crossings(more, mine)
            else:
                reply = yield keys, args
            v = verdict(reply, [op.field for op in group.ops])
            pairs = list(zip(v.fields, v.outcomes, strict=True))
            if v.replayed:  # the stored decision, whatever the ops are now
                replays += pairs
                if i == 0:  # the later slots' parts of it, charging nothing
                    for later in groups[1:]:
                        keys = later.keys(self.layout, self._record(later, slot, request_id))
                        part = verdict((yield keys, ["replay", now]), ())
                        replays += zip(part.fields, part.outcomes, strict=True)
                    break
                continue
            self._collect(found, group, pairs)
            if not v.allowed:
                yield from self._back_out(now, found, groups[i + 1 :], done)
                ordered = tuple(found[(op.slot, op.field)] for op in ops)
                return Verdict(False, ordered, tuple(op.field for op in ops))
            done.append((group, record))
        if replays:
            outs, fields = tuple(o for _, o in replays), tuple(f for f, _ in replays)
            return Verdict(True, outs, fields, replayed=True)
        ordered = tuple(found[(op.slot, op.field)] for op in ops)
        return Alerted.of(Verdict(True, ordered, tuple(op.field for op in ops)), crossed)

    def _back_out(
        self,
        now: int,
        found: dict[tuple[str, str], Outcome],
        later: Sequence[Group],
        done: Sequence[tuple[Group, str | None]],
    ) -> Flow[None]:
        """After a denial: undo the calls ``done``, peek the ``later`` ones (as they stand)."""
        for earlier, rec in done:
            back = yield earlier.keys(self.layout, rec), ["undo", now, *earlier.args()]
            self._collect(found, earlier, outcomes(back))
        for group in later:
            seen = yield group.keys(self.layout), ["peek", now, 1, *group.args()]
            self._collect(found, group, outcomes(seen))
        return None

    @staticmethod
    def _collect(
        found: dict[tuple[str, str], Outcome],
        group: Group,
        pairs: Iterable[tuple[str, Outcome]],
    ) -> None:
        slot_of = {op.field: op.slot for op in group.ops}
        for field, outcome in pairs:
            found[(slot_of.get(field, group.slots[0]), field)] = outcome

    def settle(
        self, now: int, slot: str, request_id: str, actual: Mapping[str, int] | None
    ) -> Flow[bool]:
        """Settle the record in the account's ``slot``, then on Cluster those it links; on
        one server, a record that spanned group slots answers 2: again with their keys."""
        word, amounts = _actual(actual)
        group = self.groups(slot, [])[0]
        record = self.layout.record(slot, slot, request_id)
        ok, links = yield group.keys(self.layout, record), ["settle", now, "", word, *amounts]
        if ok == 2:  # one server: the call spanned these group slots too
            group = Group((*group.slots, *codec.spanned_slots(links)), ())
            args: list[Arg] = ["settle", now, links, word, *amounts]
            ok, links = yield group.keys(self.layout, record), args
        if ok and self.cluster:
            for other in codec.linked_slots(links):
                record = self.layout.record(other, slot, request_id)
                args = ["settle", now, "", word, *amounts]
                yield Group((other,), ()).keys(self.layout, record), args
        return bool(ok)

    def settle_charges(
        self, now: int, charges: Sequence[Charge], actual: Mapping[str, int] | None
    ) -> Flow[None]:
        word, amounts = _actual(actual)
        slots = [c.slot for c in charges]
        for together in self.slot_sets(_home(slots), slots):
            mine = [c for c in charges if c.slot in together]
            if not mine:
                continue
            group = Group(together, ())
            args: list[Arg] = ["direct", now, word, len(mine)]
            for c in mine:
                params = ":".join(map(str, c.params))
                store = group.store(c.slot, c.algorithm)
                args += (store, c.field, CODES[c.algorithm], params, c.anchor, c.amount, c.meter)
            yield group.keys(self.layout), [*args, *amounts]
        return None

    def peek(self, now: int, ops: Sequence[Op]) -> Flow[list[Outcome]]:
        if not ops:
            return []
        found: dict[tuple[str, str], Outcome] = {}
        for group in self.groups(_home([op.slot for op in ops]), ops):
            if group.ops:
                reply = yield group.keys(self.layout), ["peek", now, 0, *group.args()]
                self._collect(found, group, outcomes(reply))
        return [found[(op.slot, op.field)] for op in ops]

    def reset(self, targets: Sequence[tuple[str, str]]) -> Flow[None]:
        by_slot: dict[str, list[str]] = {}
        for slot, field in targets:
            by_slot.setdefault(slot, []).append(field)
        for slot, fields in by_slot.items():
            group = Group((slot,), ())
            args: list[Arg] = ["reset"]
            for field in fields:  # a field lives in one of the slot's two stores
                args += (1, field, 2, field)
            yield group.keys(self.layout), args
        return None

    def top_up(self, now: int, op: Op, amount: int) -> Flow[int]:
        group = Group((op.slot,), (op,))
        reply = yield group.keys(self.layout), ["top_up", now, amount, *group.args()]
        return int(reply)
