"""What a denial says to the caller: a sentence naming the limit, the plan and when to retry
(or that retrying will not help), and for a limit whose reserve is held back from the plan,
how much of it is open to the plan."""

from __future__ import annotations

from .catalog import Plan
from .limit import Limit

__all__ = ["message"]


def message(plan: Plan, limit: Limit, retry: float | None, reserved: bool = False) -> str:
    """What a denial by ``limit`` says to the caller (``reserved``: the open share of a limit
    held back for higher-priority plans is used, and the whole would have admitted it)."""
    if limit.message:
        return limit.message
    if limit.algorithm == "balance":
        return f"out of {limit.meter} on plan {plan.name!r}: top up to continue"
    if limit.algorithm == "concurrency":
        text = f"too many {limit.meter} in flight (at most {limit.amount})"
    elif limit.algorithm == "allowance":
        text = f"the one-time allowance {limit.name!r} ({limit.amount} {limit.meter}) is over"
    elif limit.held:
        return _held_message(plan, limit, retry, reserved)
    else:
        rate = limit.rate or f"{limit.amount}/{limit.period}"
        text = f"limit {limit.name!r} reached: {rate} {limit.meter}"
    return f"{text} on plan {plan.name!r}{_tail(retry)}"


def _held_message(plan: Plan, limit: Limit, retry: float | None, reserved: bool) -> str:
    """The denial of a limit whose reserve is held back from ``plan``."""
    whole = limit.amount + limit.held
    rate = limit.rate or f"{whole}/{limit.period}"
    per = rate.split("/", 1)[1] if "/" in rate else rate.split(" per ", 1)[-1]
    if reserved:
        return (
            f"limit {limit.name!r}: the {limit.amount:,} of {whole:,} {limit.meter}/{per.strip()}"
            f" open to plan {plan.name!r} are used; the rest is reserved for higher-priority"
            f" plans{_tail(retry)}"
        )
    return (
        f"limit {limit.name!r} reached: {rate} {limit.meter} on plan {plan.name!r}"
        f" ({limit.amount:,} of them open to it, the rest reserved for higher-priority"
        f" plans){_tail(retry)}"
    )


def _tail(retry: float | None) -> str:
    return f"; retry in {retry:.3f} s" if retry is not None else "; retrying will not help"
