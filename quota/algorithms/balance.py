"""Prepaid balance: a signed amount that never resets.

Params ``(grant,)``: the balance an account starts with. ``State = (balance,)``; no state means
the grant. Admission needs ``balance - cost >= 0``; settlement may drive the balance negative,
after which every cost is denied until a top-up.

``remaining`` is the balance itself, signed: an overdrawn account shows what it owes (peek,
``/stats``, ``quota usage``). Every other algorithm reports ``remaining >= 0``.
"""

from __future__ import annotations

from .base import MAX_SAFE, Outcome, Params, State


def _balance(state: State, p: Params) -> int:
    return state[0] if state else p[0]


class Balance:
    """Credits: admit while the balance covers the estimate; settle to the actual spend."""

    form = None  # the flat state is the working form

    @staticmethod
    def acquire(state: State, now: int, p: Params, cost: int) -> tuple[State, Outcome]:
        balance = _balance(state, p)
        if balance - cost < 0:
            return state, Outcome(False, balance, 0, None)  # signed: a debt shows as one
        return (balance - cost,), Outcome(True, balance - cost, 0, 0)

    @staticmethod
    def settle(state: State, now: int, p: Params, anchor: int, charged: int, actual: int) -> State:
        balance, delta = _balance(state, p), actual - charged
        # Saturate at -/+MAX_SAFE so that the balance stays exact in Lua.
        if delta > 0 and balance < 0 and delta > balance + MAX_SAFE:
            return (-MAX_SAFE,)
        if delta < 0 and balance > 0 and -delta > MAX_SAFE - balance:
            return (MAX_SAFE,)
        return (balance - delta,)

    @staticmethod
    def top_up(state: State, p: Params, amount: int) -> State:
        """Add ``amount`` to the balance, saturating at MAX_SAFE to stay exact in Lua."""
        balance = _balance(state, p)
        return (balance + amount if amount <= MAX_SAFE - balance else MAX_SAFE,)

    @staticmethod
    def expiry(state: State, p: Params) -> int | None:
        return None
