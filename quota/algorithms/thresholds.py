"""Threshold alerts as the engines evaluate them: which thresholds an admitted decision newly
reaches, and the marker that remembers, per limit state and window, what was emitted.

The one definition: the memory engine runs it, ``lua/commands.lua`` (``cmd_alerted``)
transcribes it. The engine evaluates it inside the same atomic call as the decision, after
the charge, so two processes can never both emit one threshold of one window.

A ``Watch`` names one op of a decision and how to read its outcome:

- ``"u"`` (used): ``x = capacity - remaining`` rises; threshold ``T`` is reached at ``x >= T``.
- ``"r"`` (remaining): ``x = remaining`` falls; reached at ``x <= T`` (a balance below an
  amount, a trial's calls left).
- ``"t"`` (time left): ``x = reset_after`` falls; reached at ``x <= T`` (a trial's days left).

Thresholds are listed in the order they are reached (ascending for ``u``, descending for the
others), so the thresholds reached are always a leading run: the *level*. The marker, stored
beside the state under ``<field>!<kind>``, is ``(window, level)``: the window is the outcome's
anchor (a counter's window start, an allowance's start, 0 for a balance) when ``span`` is 0,
else (sliding windows) the time of the marker's first emission, valid for ``span`` ms. A
decision emits the thresholds between the marker's level and its own, and raises the marker.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any, NamedTuple

from .base import Outcome

#: Where a template's watches live in ``Targets.memo`` (the planner puts them there).
WATCH = "alerts"
#: Joins a state's field and a watch's kind into the marker's field.
MARK = "!"

Marker = tuple[int, int]


class Watch(NamedTuple):
    """One op of a decision to watch: ``op``, its index among the ops; the kind of reading, the span
    of a rolling window (0: the outcome's anchor is the window), the capacity (``u``), and
    the absolute thresholds in the order they are reached."""

    op: int
    kind: str
    span: int
    capacity: int
    thresholds: tuple[int, ...]


class Crossing(NamedTuple):
    """What one decision newly reached on watch ``watch`` (its index among the template's
    watches): ``thresholds[first:last]``."""

    watch: int
    first: int
    last: int


def reading(w: Watch, out: Outcome) -> int:
    """The value the watch's thresholds apply to."""
    if w.kind == "u":
        return w.capacity - out.remaining
    return out.reset_after if w.kind == "t" else out.remaining


def level(w: Watch, x: int) -> int:
    """How many of the watch's thresholds ``x`` has reached (a leading run)."""
    n = 0
    for t in w.thresholds:
        if (x >= t) if w.kind == "u" else (x <= t):
            n += 1
        else:
            break
    return n


def cross(marker: Marker | None, now: int, w: Watch, out: Outcome) -> tuple[Marker | None, int]:
    """The marker to store (None: unchanged) and the level emitted before it, for an admitted
    outcome ``out`` at ``now``: thresholds ``[prior, new level)`` are newly reached."""
    reached = level(w, reading(w, out))
    if not reached:
        return None, 0
    span = w.span
    window, prior = (now if span else out.anchor), 0
    if marker is not None:
        mw, ml = marker
        if (now < mw + span) if span else mw == out.anchor:
            window, prior = mw, ml
    if reached <= prior:
        return None, prior
    return (window, reached), prior


def marker_expiry(marker: Marker, now: int, w: Watch, out: Outcome) -> int | None:
    """When a marker stops mattering: a rolling window's end, the limit's reset, or never
    (a balance: cleared by a top-up instead)."""
    if w.span:
        return marker[0] + w.span
    return now + out.reset_after if out.reset_after > 0 else None


class Markers(dict[tuple[str, str], tuple[int, int, int | None]]):
    """The memory engine's markers: (slot, ``field!kind``) -> (window, level, expiry or
    None), swept by the watched acquires only (catalogs without alerts never look)."""

    def __init__(self) -> None:
        super().__init__()
        self.heap: list[tuple[int, tuple[str, str]]] = []

    def watch(
        self, now: int, ops: Sequence[Any], watches: Sequence[Watch], outcomes: Sequence[Outcome]
    ) -> list[Crossing]:
        """What an admitted decision (``ops``: its ops, addressed by ``slot`` and ``field``)
        newly reached, its markers raised."""
        heap = self.heap
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            found = self.get(key)
            if found is not None and found[2] is not None and found[2] <= now:
                del self[key]
        crossings: list[Crossing] = []
        for i, w in enumerate(watches):
            op, out = ops[w.op], outcomes[w.op]
            key = (op.slot, op.field + MARK + w.kind)
            found = self.get(key)
            new, prior = cross(None if found is None else found[:2], now, w, out)
            if new is None:
                continue
            expiry = marker_expiry(new, now, w, out)
            self[key] = (*new, expiry)
            if expiry is not None:
                heapq.heappush(heap, (expiry, key))
            crossings.append(Crossing(i, prior, new[1]))
        return crossings
