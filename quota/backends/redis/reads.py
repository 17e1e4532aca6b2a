"""Reading stored state with plain commands (HMGET, HGETALL), no script: the usage history's
report and the tests' dump of a whole keyspace. Written as flows like ``protocol``'s, so the
sync and asyncio engines run them alike."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from ...algorithms import State
from ...algorithms.thresholds import MARK
from ..base import Op
from .codec import Command, Layout, decode_state

__all__ = ["dump", "read_states"]

Result = TypeVar("Result")
#: A read as the plain commands it sends, ending with its result.
Reads = Generator[Command, Any, Result]


def read_states(layout: Layout, ops: Sequence[Op]) -> Reads[list[State]]:
    """The stored states of ``ops``, one HMGET per hash."""
    by_hash: dict[str, list[int]] = {}
    for i, op in enumerate(ops):
        by_hash.setdefault(layout.hash_of(op.slot, op.algorithm), []).append(i)
    out: list[State] = [() for _ in ops]
    for key, idx in by_hash.items():
        raw = yield ("HMGET", key, *(ops[i].field for i in idx))
        for i, value in zip(idx, raw, strict=True):
            out[i] = decode_state(ops[i].algorithm, value or "")
    return out


def dump(
    layout: Layout, keys: Iterable[str], algorithms: Mapping[str, str]
) -> Reads[dict[tuple[str, str], State]]:
    """Every state the hashes among ``keys`` hold, decoded (tests): ``algorithms`` maps
    limit name -> algorithm; reservation records are skipped."""
    out: dict[tuple[str, str], State] = {}
    for key in keys:
        if layout.is_record(key):
            continue
        values: Mapping[str, str] = yield ("HGETALL", key)
        slot = layout.slot_of(key)
        for name, raw in values.items():
            if MARK in name:  # an alert's marker (quota.algorithms.thresholds)
                continue
            out[(slot, name)] = decode_state(algorithms[name.split("/")[0]], raw)
    return out
