"""What the Redis engine sends and receives: scripts, key names, arguments, replies, records.

Pure (no I/O), so that the sync and async engines share it, secret rotation names keys the way
the engine does, and tests can read stored state. The engine's script is ``lua/arith.lua`` +
``lua/algorithms.lua`` + ``lua/commands.lua``: one SHA for every command, so a reload after
NOSCRIPT restores everything at once. Rotation's script, ``lua/rotate.lua``, is kept apart: it
calls commands (TYPE, HGETALL, DEL) that the engine's user does not need.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any, NamedTuple

from ...algorithms import Outcome, State
from ..base import Op, Verdict

#: Algorithm name -> the one-letter code the script dispatches on.
CODES = {
    "sliding_window": "s",
    "concurrency": "c",
    "fixed_window": "w",
    "calendar": "w",
    "allowance": "a",
    "token_bucket": "t",
    "balance": "b",
    "history": "h",
}
_LOGS = {"s", "c", "h"}

Arg = str | int
#: One Redis command: its name, then its arguments.
Command = tuple[Arg, ...]


class Script:
    """One Lua program as Redis receives it: files of ``lua/`` joined, read at first use.

    ``sha`` is the name EVALSHA calls it by; ``text`` is what EVAL sends after NOSCRIPT."""

    def __init__(self, *files: str) -> None:
        self.files = files

    @cached_property
    def text(self) -> str:
        lua = resources.files(__package__) / "lua"
        return "\n".join((lua / name).read_text() for name in self.files)

    @cached_property
    def sha(self) -> str:
        return hashlib.sha1(self.text.encode()).hexdigest()


#: Every command a decision runs (acquire, settle, undo, peek, reset, top-up, batch).
ENGINE = Script("arith.lua", "algorithms.lua", "commands.lua")
#: Secret rotation's snapshot and compare-and-delete (``quota.backends.redis.rotate``).
ROTATE = Script("rotate.lua")


def script_sha() -> str:
    """The engine script's SHA (what a server holds once it has loaded it)."""
    return ENGINE.sha


def request_hash(request_id: str) -> str:
    """A short fixed-length name for a request id (any characters, any length)."""
    raw = hashlib.blake2b(request_id.encode("utf-8"), digest_size=12).digest()
    return base64.urlsafe_b64encode(raw).decode("ascii")


_BALANCES = ":p"
_HISTORY = ":h"
_RECORD = ":r:"
_GLOB = re.compile(r"([*?\[\]\\])")


@dataclass(frozen=True, slots=True)
class Layout:
    """Key names: every key of one slot shares the hash tag ``{slot}`` (one Cluster slot).

    ``<prefix>:{<slot>}`` holds windowed states (its TTL follows the latest expiry written),
    ``<prefix>:{<slot>}:p`` holds balances (never expire), ``<prefix>:{<slot>}:h`` the usage
    history, ``<prefix>:{<slot>}:r:<hash>`` is one reservation record. The prefix holds no
    brace (``connect.parse`` refuses one), so the first ``{`` of a key opens its slot.
    """

    prefix: str = "quota"

    def states(self, slot: str) -> str:
        return f"{self.prefix}:{{{slot}}}"

    def balances(self, slot: str) -> str:
        return f"{self.prefix}:{{{slot}}}{_BALANCES}"

    def history(self, slot: str) -> str:
        """Usage history: its values outgrow the 64-byte listpack limit, so they stay out of
        the windowed hash; its TTL follows the latest expiry."""
        return f"{self.prefix}:{{{slot}}}{_HISTORY}"

    def hashes(self, slot: str) -> tuple[str, str, str]:
        """Every hash of ``slot``: windowed states, balances, usage history."""
        return self.states(slot), self.balances(slot), self.history(slot)

    def hash_of(self, slot: str, algorithm: str) -> str:
        """The hash that holds a state of ``algorithm`` in ``slot``."""
        if algorithm == "history":
            return self.history(slot)
        return self.balances(slot) if algorithm == "balance" else self.states(slot)

    def record(self, slot: str, account_slot: str, request_id: str) -> str:
        name = request_id if slot == account_slot else f"{account_slot}:{request_id}"
        return f"{self.prefix}:{{{slot}}}{_RECORD}{request_hash(name)}"

    @staticmethod
    def slot_of(key: str) -> str:
        """The slot a key of this layout belongs to."""
        return key[key.index("{") + 1 : key.index("}")]

    @staticmethod
    def is_record(key: str) -> bool:
        return key[key.index("}") + 1 :].startswith(_RECORD)

    def in_slot(self, key: str, slot: str) -> str:
        """The key that holds in ``slot`` what ``key`` holds in its own (same store, same
        record hash)."""
        return f"{self.prefix}:{{{slot}}}{key[key.index('}') + 1 :]}"

    def pattern(self, tail: str = "*") -> str:
        """A SCAN pattern: every key of this layout whose part after its slot matches
        ``tail`` (the prefix's glob characters escaped)."""
        escaped = _GLOB.sub(r"\\\1", self.prefix)
        return f"{escaped}:{{*}}{tail}"

    def records_pattern(self) -> str:
        """A SCAN pattern matching every reservation record of this layout."""
        return self.pattern(f"{_RECORD}*")


@dataclass(frozen=True, slots=True)
class Group:
    """Ops that one script call evaluates: the stores of ``slots`` (slot k holds stores 2k+1,
    windowed, and 2k+2, balances; then store 2n+k+1, its usage history, n = len(slots))."""

    slots: tuple[str, ...]
    ops: tuple[Op, ...]

    def keys(self, layout: Layout, record: str | None = None) -> list[str]:
        out = [record or layout.states(self.slots[0])]
        for slot in self.slots:
            out += (layout.states(slot), layout.balances(slot))
        return out + [layout.history(slot) for slot in self.slots]  # after every slot's pair

    def store(self, slot: str, algorithm: str) -> int:
        if algorithm == "history":
            return 2 * len(self.slots) + self.slots.index(slot) + 1
        return 2 * self.slots.index(slot) + (2 if algorithm == "balance" else 1)

    def args(self, zero_cost: bool = False) -> list[Arg]:
        out: list[Arg] = [len(self.ops)]
        for op in self.ops:
            out += (
                self.store(op.slot, op.algorithm),
                op.field,
                CODES[op.algorithm],
                ":".join(map(str, op.params)),
                0 if zero_cost else op.cost,
                op.meter,
            )
        return out


def outcomes(reply: Sequence[Any], start: int = 0) -> list[tuple[str, Outcome]]:
    """Parse ``field, allowed, remaining, reset, retry (-1 = never), anchor`` sextuples."""
    out = []
    for i in range(start, len(reply), 6):
        field, allowed, remaining, reset, retry, anchor = reply[i : i + 6]
        retry_ms = int(retry)
        outcome = Outcome(
            bool(allowed),
            int(remaining),
            int(reset),
            None if retry_ms < 0 else retry_ms,
            int(anchor),
        )
        out.append((str(field), outcome))
    return out


def verdict(reply: Sequence[Any]) -> Verdict:
    """An acquire reply: ``allowed, replayed`` then one sextuple per op."""
    pairs = outcomes(reply, 2)
    return Verdict(
        bool(reply[0]),
        tuple(o for _, o in pairs),
        tuple(f for f, _ in pairs),
        replayed=bool(reply[1]),
    )


def _unb36(text: str) -> int:
    return -int(text[1:], 36) if text.startswith("-") else int(text, 36)


def decode_state(algorithm: str, raw: str) -> State:
    """A stored state as the Python functions hold it (the inverse of the script's encode)."""
    if not raw:
        return ()
    if CODES[algorithm] not in _LOGS:
        return tuple(int(x) for x in raw.split(","))
    out: list[int] = []
    prev = 0
    for part in raw.split(","):
        t, _, amount = part.partition(":")
        prev += _unb36(t)
        out += (prev, _unb36(amount) if amount else 1)
    return tuple(out)


class RecordedCharge(NamedTuple):
    """One charge of a reservation record, its numbers kept as the script wrote them."""

    store: str
    field: str
    code: str
    params: str
    anchor: str
    amount: str
    meter: str
    remaining: str
    reset: str
    retry: str


class UndoImage(NamedTuple):
    """A state before and after an acquire, kept to undo it exactly (Cluster, linked calls)."""

    store: str
    field: str
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class Record:
    """A reservation record, as ``lua/commands.lua`` writes it (see ``parse_record`` there):
    ``expires,open,linked;charge;charge...[#image!image...]``, a charge's ten values joined by
    ``,`` and an image's four by ``|``. ``images`` is None when the record has no ``#`` part.

    Limit, meter and key-hash names hold none of ``,;#!|`` (``quota.limit.NAME``, URL-safe
    base64) and encoded states none but ``,``, so ``encode_record(decode_record(raw)) == raw``.
    """

    expires: str
    open: str
    linked: str
    charges: tuple[RecordedCharge, ...]
    images: tuple[UndoImage, ...] | None

    def renamed(self, rename: Callable[[str], str]) -> Record:
        """The record with ``rename`` applied to the field of every charge and image."""
        charges = tuple(c._replace(field=rename(c.field)) for c in self.charges)
        images = self.images
        if images is not None:
            images = tuple(i._replace(field=rename(i.field)) for i in images)
        return Record(self.expires, self.open, self.linked, charges, images)


def decode_record(raw: str) -> Record:
    """A stored reservation record; ValueError when ``raw`` is not one."""
    main, hashed, undo = raw.partition("#")
    head, *charges = main.split(";")
    expires, is_open, linked = head.split(",")
    try:
        decoded = tuple(RecordedCharge(*c.split(",")) for c in charges)
        images = tuple(UndoImage(*i.split("|")) for i in undo.split("!")) if undo else ()
    except TypeError as exc:  # a charge or an image with the wrong number of values
        raise ValueError(f"not a reservation record: {raw!r}") from exc
    return Record(expires, is_open, linked, decoded, images if hashed else None)


def encode_record(record: Record) -> str:
    """The stored spelling of ``record`` (the inverse of ``decode_record``)."""
    head = ",".join((record.expires, record.open, record.linked))
    out = ";".join([head, *(",".join(c) for c in record.charges)])
    if record.images is not None:
        out += "#" + "!".join("|".join(i) for i in record.images)
    return out
