"""What the Redis engine sends and receives: the script, key names, arguments and replies.

Pure (no I/O), so that the sync and async engines share it and tests can read stored state.
The script is ``lua/arith.lua`` + ``lua/algorithms.lua`` + ``lua/commands.lua``: one SHA for
every command, so a reload after NOSCRIPT restores everything at once.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from ..algorithms import Outcome, State
from .base import Op, Verdict

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


@cache
def script() -> str:
    """The whole Lua program, as Redis receives it."""
    lua = resources.files("quota") / "backends" / "lua"
    return "\n".join(
        (lua / name).read_text() for name in ("arith.lua", "algorithms.lua", "commands.lua")
    )


@cache
def script_sha() -> str:
    return hashlib.sha1(script().encode()).hexdigest()


def request_hash(request_id: str) -> str:
    """A short fixed-length name for a request id (any characters, any length)."""
    raw = hashlib.blake2b(request_id.encode("utf-8"), digest_size=12).digest()
    return base64.urlsafe_b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class Layout:
    """Key names: every key of one slot shares the hash tag ``{slot}`` (one Cluster slot).

    ``<prefix>:{<slot>}`` holds windowed states (its TTL follows the latest expiry written),
    ``<prefix>:{<slot>}:p`` holds balances (never expire), ``<prefix>:{<slot>}:r:<hash>``
    is one reservation record.
    """

    prefix: str = "quota"

    def states(self, slot: str) -> str:
        return f"{self.prefix}:{{{slot}}}"

    def balances(self, slot: str) -> str:
        return f"{self.prefix}:{{{slot}}}:p"

    def history(self, slot: str) -> str:
        """Usage history (``<prefix>:{<slot>}:h``): its values outgrow the 64-byte listpack
        limit, so they stay out of the windowed hash; its TTL follows the latest expiry."""
        return f"{self.prefix}:{{{slot}}}:h"

    def record(self, slot: str, account_slot: str, request_id: str) -> str:
        name = request_id if slot == account_slot else f"{account_slot}:{request_id}"
        return f"{self.prefix}:{{{slot}}}:r:{request_hash(name)}"


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
