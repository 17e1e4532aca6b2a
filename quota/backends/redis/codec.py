"""What the Redis engine sends and receives: key names, arguments, replies.

Pure (no I/O), so that the sync and async engines share it, secret rotation names keys the way
the engine does, and tests can read stored state. The scripts themselves are ``scripts``'s; how
states and reservation records are spelt lives in ``stored`` and ``records``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ...algorithms import Outcome
from ...algorithms.thresholds import Crossing, Watch
from ...keys import GLOBAL_SLOT
from ..base import Op, Verdict
from .records import Record, decode_record, encode_record
from .scripts import ENGINE, LIBRARY, ROTATE, Library, Script, script_sha
from .stored import CODES, decode_state

# Re-exported: scripts, state and record formats live in their own modules.
__all__ = [
    "CODES",
    "ENGINE",
    "LIBRARY",
    "ROTATE",
    "Library",
    "Record",
    "Script",
    "decode_record",
    "decode_state",
    "encode_record",
    "script_sha",
]

Arg = str | int
#: The command word of an acquire without a request id over one slot set: the library's
#: function where the server runs it (``calls.invoke``), else the script's command.
FAST = "fast"
#: The command word of a watched acquire: the watches, then a FAST or "acquire" call's words.
ALERTED = "alerted"
#: One Redis command: its name, then its arguments.
Command = tuple[Arg, ...]


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


#: Joins the slots a record's ``linked`` names (no slot name holds a dot: see quota.keys).
_JOIN = "."
#: Starts the ``linked`` of a one-server record: the group slots its call spanned.
_SPANNED = "="


def linked(slots: Sequence[str], later: Sequence[str]) -> str:
    """What a reservation record written by a call over ``slots`` keeps as ``linked``, the
    other slots of its decision: on one server, ``=`` and the group slots the call spans
    beyond the account's and the global one (a settle must pass their keys: the script
    answers 2 and them until it does); on Cluster, the slots of the ``later`` calls, which
    the account's record settles too (and a call with later ones keeps undo images)."""
    if len(slots) > 2:
        return _SPANNED + _JOIN.join(slots[2:])
    return _JOIN.join(later)


def linked_slots(links: str) -> list[str]:
    """The later slots a Cluster record's ``linked`` names (the ``1`` of older records: the
    global slot)."""
    if not links or links.startswith(_SPANNED):
        return []
    return [GLOBAL_SLOT] if links == "1" else links.split(_JOIN)


def spanned_slots(links: str) -> list[str]:
    """The group slots a one-server record's ``linked`` (``=...``) names."""
    return links[1:].split(_JOIN) if links.startswith(_SPANNED) else []


@dataclass(frozen=True, slots=True)
class Group:
    """Ops that one script call evaluates: the stores of ``slots`` (slot k holds stores 2k+1,
    windowed, and 2k+2, balances; then store 2n+k+1, its usage history, n = len(slots))."""

    slots: tuple[str, ...]
    ops: tuple[Op, ...]

    def keys(self, layout: Layout, record: str | None = None) -> list[str]:
        out = list(_keys(layout, self.slots))
        if record is not None:
            out[0] = record
        return out

    def store(self, slot: str, algorithm: str) -> int:
        if algorithm == "history":
            return 2 * len(self.slots) + self.slots.index(slot) + 1
        return 2 * self.slots.index(slot) + (2 if algorithm == "balance" else 1)

    def args(self, meters: bool = True) -> list[Arg]:
        """The ops as ``lua/core.lua`` reads them: their count, then per op its store, field,
        code, three params ("" for an absent one), cost and (``meters``) meter."""
        out: list[Arg] = [len(self.ops)]
        for op in self.ops:
            params: tuple[Arg, ...] = (*op.params, "", "", "")
            out += (self.store(op.slot, op.algorithm), op.field, CODES[op.algorithm], *params[:3])
            out += (op.cost, op.meter) if meters else (op.cost,)
        return out

    def fast(self, layout: Layout) -> tuple[list[str], list[Arg]]:
        """The keys and arguments of the ``FAST`` acquire: no record, no meters, the keys up
        to the last store an op uses (``args(meters=False)``, written out: the hot path)."""
        out: list[Arg] = [len(self.ops)]
        last = 0
        for op in self.ops:
            store = self.store(op.slot, op.algorithm)
            last = store if store > last else last
            params = op.params
            out += (store, op.field, CODES[op.algorithm], *params, *_PAD[len(params)], op.cost)
        return list(_keys(layout, self.slots)[: last + 1]), out


#: "" params after a shorter list of them: every op sends three.
_PAD: tuple[tuple[str, ...], ...] = (("", "", ""), ("", ""), ("",), ())


@lru_cache(maxsize=4096)
def _keys(layout: Layout, slots: tuple[str, ...]) -> tuple[str, ...]:
    """A call's keys: the record's place (the first store), then per slot its windowed and
    balances hashes, then per slot its usage history."""
    out = [layout.states(slots[0])]
    for slot in slots:
        out += (layout.states(slot), layout.balances(slot))
    return (*out, *(layout.history(slot) for slot in slots))  # after every slot's pair


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


def verdict(reply: Sequence[Any], fields: Sequence[str]) -> Verdict:
    """An acquire reply: ``allowed, replayed``, then a replay's sextuples (the fields it
    recorded), or ``allowed, remaining, reset, retry, anchor`` for each of ``fields``."""
    if reply[1]:
        pairs = outcomes(reply, 2)
        outs = tuple(o for _, o in pairs)
        return Verdict(True, outs, tuple(f for f, _ in pairs), replayed=True)
    r = reply  # integers, as Redis replies them
    outs = tuple(
        Outcome(r[i] == 1, r[i + 1], r[i + 2], None if r[i + 3] < 0 else r[i + 3], r[i + 4])
        for i in range(2, len(r), 5)
    )
    return Verdict(r[0] == 1, outs, tuple(fields))


def watch_args(now: int, watches: Sequence[tuple[int, Watch, int]]) -> list[Arg]:
    """The words ``lua/commands.lua``'s ``cmd_alerted`` reads before the acquire it wraps:
    per watch (op index within the call, the watch, its index among the template's), the op
    index, kind, span, capacity and thresholds."""
    out: list[Arg] = [ALERTED, now, len(watches)]
    for k, w, _ in watches:
        out += (k, w.kind, w.span, w.capacity, len(w.thresholds), *w.thresholds)
    return out


def crossings(crossed: Sequence[Any], watches: Sequence[tuple[int, Watch, int]]) -> list[Crossing]:
    """The ``{watch, prior, level}`` triples of an alerted reply, numbered as the template's
    watches (the call numbers its own from 0)."""
    return [Crossing(watches[int(i)][2], int(prior), int(new)) for i, prior, new in crossed]
