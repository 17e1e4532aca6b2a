"""Threshold alerts: what a catalog's ``[alerts]`` declares, the watches a template hands the
engines, and the ``Alert`` events a decision that newly reached a threshold carries.

Detection happens in the engine, inside the decision's own atomic call
(``quota.algorithms.thresholds``): no extra round trip, and a threshold of one window is
emitted once however many processes share the store. This module only plans the watches
(absolute thresholds from percentages and amounts) and words the events; delivering them is
the limiter's (``Observer.alert``, alert sinks such as ``quota.webhooks.WebhookSender``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .algorithms import Outcome, Params
from .algorithms.thresholds import WATCH, Crossing, Watch
from .limit import Limit

_STRICT = ConfigDict(extra="forbid", frozen=True)
#: Algorithms whose usage is a share of a capacity within a window: ``used`` applies.
USED = ("sliding_window", "fixed_window", "calendar", "allowance")
#: Where a template's alert descriptions live in ``Targets.memo`` (beside its watches).
WATCHED = "alerts.watched"
DAY_MS = 86_400_000


class TrialLeft(BaseModel):
    """``trial_left = { days = 3, calls = 10 }``: alert when a one-time allowance has this
    many days (until its span ends) or calls (of its budget) left."""

    model_config = _STRICT

    days: int | None = Field(default=None, ge=1)
    calls: int | None = Field(default=None, ge=0)


class AlertConfig(BaseModel):
    """``[alerts]`` of a catalog: ``used`` (percent of every windowed limit's capacity; a
    limit's own ``alerts`` refines it), ``balance_below`` (credits; one amount or several),
    ``trial_left``."""

    model_config = _STRICT

    used: list[int] = Field(default_factory=list)
    balance_below: list[int] = Field(default_factory=list)
    trial_left: TrialLeft = Field(default_factory=TrialLeft)

    @field_validator("balance_below", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("used")
    @classmethod
    def _percents(cls, value: list[int]) -> list[int]:
        return percents(value)

    @field_validator("balance_below")
    @classmethod
    def _amounts(cls, value: list[int]) -> list[int]:
        if any(a < 1 for a in value):
            raise ValueError(f"balance_below amounts must be at least 1, got {value!r}")
        return sorted(set(value), reverse=True)  # the order a falling balance reaches them

    def active(self, limits: Iterable[Limit]) -> bool:
        """Whether anything is watched: a catalog-wide alert, or a limit's own."""
        trial = self.trial_left.days is not None or self.trial_left.calls is not None
        return bool(self.used or self.balance_below or trial) or any(lim.alerts for lim in limits)


def percents(value: list[int]) -> list[int]:
    """Alert percentages: integers from 1 to 100, ascending, each once."""
    if any(isinstance(p, bool) or not 1 <= p <= 100 for p in value):
        raise ValueError(f"alert percentages are integers from 1 to 100, got {value!r}")
    return sorted(set(value))


class Watched(NamedTuple):
    """A watch and what its events say: the limit, the kind, the thresholds as declared."""

    watch: Watch
    limit: Limit
    kind: str  # used, balance_below, trial_calls_left, trial_days_left
    labels: tuple[int, ...]


class Addressed(Protocol):
    """What the watches read of an op (``backends.base.Op`` has it): its algorithm and
    params."""

    @property
    def algorithm(self) -> str: ...

    @property
    def params(self) -> Params: ...


def plan_watches(
    config: AlertConfig, limits: Sequence[Limit], ops: Sequence[Addressed]
) -> list[Watched]:
    """The watches of one template: ``limits[i]`` is the limit of ``ops[i]``."""
    out: list[Watched] = []
    for i, (lim, op) in enumerate(zip(limits, ops, strict=True)):
        algo = op.algorithm
        used = config.used if lim.alerts is None else lim.alerts
        if algo in USED and used:
            cap = op.params[0]
            marks = tuple(max(1, math.ceil(cap * p / 100)) for p in used)
            span = op.params[1] if algo == "sliding_window" else 0
            out.append(Watched(Watch(i, "u", span, cap, marks), lim, "used", tuple(used)))
        if algo == "balance" and config.balance_below:
            below = tuple(config.balance_below)
            marks = tuple(b - 1 for b in below)  # remaining < b
            out.append(Watched(Watch(i, "r", 0, 0, marks), lim, "balance_below", below))
        trial = config.trial_left
        if algo == "allowance" and trial.calls is not None:
            calls = (trial.calls,)
            watch = Watch(i, "r", 0, op.params[0], calls)
            out.append(Watched(watch, lim, "trial_calls_left", calls))
        if algo == "allowance" and trial.days is not None:
            days = (trial.days,)
            watch = Watch(i, "t", 0, op.params[0], (trial.days * DAY_MS,))
            out.append(Watched(watch, lim, "trial_days_left", days))
    return out


@dataclass(frozen=True, slots=True)
class Alert:
    """A threshold one decision newly reached: at most once per window per limit state.

    ``threshold`` is as declared (a percentage, an amount of credits, calls or days left);
    ``used`` and ``capacity`` are None for a balance; ``reset_at`` (epoch seconds) is when
    the limit's window resets, None when it never does; ``at`` is the decision's time."""

    account: str
    plan: str
    limit: str
    meter: str
    scope: str
    kind: str
    threshold: int
    used: int | None
    capacity: int | None
    remaining: int
    reset_at: float | None
    at: float
    request_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (what a webhook posts)."""
        return asdict(self)


def events(
    account: str,
    plan: str,
    watched: Sequence[Watched],
    outcomes: Sequence[Outcome],
    crossings: Iterable[Crossing],
    now: int,
    request_id: str | None,
) -> tuple[Alert, ...]:
    """The events of a decision's ``crossings``, in the order reached."""
    out: list[Alert] = []
    for c in crossings:
        w = watched[c.watch]
        o = outcomes[w.watch.op]
        lim, cap = w.limit, None if w.kind == "balance_below" else w.watch.capacity
        used = None if cap is None else cap - o.remaining
        reset = None if o.reset_after <= 0 else (now + o.reset_after) / 1000
        for label in w.labels[c.first : c.last]:
            event = Alert(
                account, plan, lim.name, lim.meter, lim.scope, w.kind, label, used, cap,
                o.remaining, reset, now / 1000, request_id,
            )  # fmt: skip
            out.append(event)
    return tuple(out)


class AlertSink(Protocol):
    """Anything that takes alert events: must be quick and must not block (queue them)."""

    def alert(self, event: Alert) -> None: ...


class Emitter:
    """Hands each event to every target; a target that raises is counted, never propagated
    (an alert must never fail a decision)."""

    def __init__(self, targets: Sequence[Callable[[Alert], object]]) -> None:
        self.targets = tuple(targets)
        self.errors = 0

    def __call__(self, batch: Iterable[Alert]) -> None:
        for event in batch:
            for target in self.targets:
                try:
                    target(event)
                except Exception:
                    self.errors += 1


def attach(
    memo: dict[object, Any], config: AlertConfig, limits: Sequence[Limit], ops: Sequence[Addressed]
) -> None:
    """Put a template's watches where the engines look (``Targets.memo``; nothing when no
    limit of it is watched: its acquires then take the path of a catalog without alerts)."""
    watched = plan_watches(config, limits, ops)
    if watched:
        memo[WATCH] = tuple(w.watch for w in watched)
        memo[WATCHED] = tuple(watched)
