"""Secret rotation on Redis and Cluster: the storage half of ``quota.rotate``.

An account's keys (its hashes and its reservation records, all in its slot) are read in one
script call, written under the new slot's names, then deleted by a second script call only if
nothing changed them since the read; otherwise the account is copied again, so a decision made
meanwhile with the old secret is never lost. Key names come from ``codec.Layout`` (the names
the engine writes), records are decoded and encoded again by the codec with their fields
renamed, and both script calls are ``lua/rotate.lua`` through ``calls.evaluate``.

Which fields are renamed, and which are dropped, is decided above (``quota.rotate``): here it
is the ``rename`` function, ``None`` for a field to drop.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigError
from .calls import ERRORS, backend_error, drive, evaluate
from .codec import ROTATE, Arg, Command, Layout
from .engine import RedisBackend
from .records import decode_record, encode_record

#: A field's new name, or None when the field is dropped.
Rename = Callable[[str], str | None]

#: Copies of one account before giving up while decisions keep changing its old keys.
ATTEMPTS = 100
_SCAN_COUNT = 1000


@dataclass
class Moved:
    """What moving one account copied."""

    fields: int = 0  # hash fields (limits, balances, usage history, per-key budgets)
    records: int = 0  # reservation records
    dropped: list[str] = field(default_factory=list)  # fields ``rename`` dropped


def record_keys(engine: RedisBackend, slots: Collection[str]) -> dict[str, list[str]]:
    """The reservation record keys of each of ``slots`` (one SCAN of the keyspace, every node
    of a Cluster)."""
    out: dict[str, list[str]] = {}
    if not slots:
        return out
    layout = engine.layout
    try:
        for key in engine.client.scan_iter(match=layout.records_pattern(), count=_SCAN_COUNT):
            slot = layout.slot_of(key)
            if slot in slots:
                out.setdefault(slot, []).append(key)
    except ERRORS as exc:
        raise backend_error(exc) from exc
    return out


def move_account(
    engine: RedisBackend, old: str, new: str, rename: Rename, records: Sequence[str]
) -> Moved | None:
    """Move slot ``old``'s hashes and ``records`` (its record keys) to slot ``new``; None when
    ``old`` held nothing. ConfigError when decisions kept changing it through every attempt."""
    return drive(_move(engine.layout, old, new, rename, records), engine.execute)


def _move(
    layout: Layout, old: str, new: str, rename: Rename, records: Sequence[str]
) -> Generator[Command, Any, Moved | None]:
    sources = [*layout.hashes(old), *records]
    targets = [layout.in_slot(key, new) for key in sources]
    for _ in range(ATTEMPTS):
        snapshot = yield from evaluate(ROTATE, sources, ["snapshot"])
        if all(entry[0] == "n" for entry in snapshot):
            return None
        moved = Moved()
        expect: list[Arg] = ["drop_if_same"]
        for entry, target in zip(snapshot, targets, strict=True):
            kind, body = entry[0], list(entry[2:])
            expect += [len(body), *body]
            if kind == "h":
                yield from _copy_hash(target, int(entry[1]), body, rename, moved)
            elif kind == "s":
                yield from _copy_record(target, int(entry[1]), body[0], rename, moved)
        if (yield from evaluate(ROTATE, sources, expect)):
            return moved
    raise ConfigError(f"account slot {old!r} kept changing during the rotation: stop its traffic")


def _copy_hash(
    target: str, pttl: int, body: list[str], rename: Rename, moved: Moved
) -> Generator[Command, Any, None]:
    """Write a hash's fields (``body``: field, value, ...) under their new names into
    ``target``, and its time to live unless ``target`` already lives longer."""
    pairs: list[Arg] = []
    for name, value in zip(body[::2], body[1::2], strict=True):
        to = rename(name)
        if to is None:
            moved.dropped.append(name)
        else:
            pairs += (to, value)
    if not pairs:
        return
    yield ("HSET", target, *pairs)
    moved.fields += len(pairs) // 2
    current = int((yield ("PTTL", target)))
    if pttl > 0 and (current == -1 or 0 < current < pttl):
        yield ("PEXPIRE", target, pttl)


def _copy_record(
    target: str, pttl: int, raw: str, rename: Rename, moved: Moved
) -> Generator[Command, Any, None]:
    """Write a live reservation record into ``target`` with its fields renamed (a field that
    ``rename`` drops keeps its name in the record)."""
    if pttl <= 0:
        return
    record = decode_record(raw).renamed(lambda name: rename(name) or name)
    yield ("SET", target, encode_record(record), "PX", pttl)
    moved.records += 1
