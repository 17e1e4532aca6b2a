"""What ``Limiter`` and ``AsyncLimiter`` share: construction (catalog, store, failure policy,
clock), and everything about a call but the call to the engine itself: planning an acquire,
the block cache, turning the engine's verdict into a Decision (shadow limits too), and the
targets of settles, peeks, resets and top-ups. No I/O.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Generic, Literal, TypeVar

from .alerts import AlertSink, Emitter
from .algorithms import MAX_SAFE, Outcome
from .backends import AsyncBackend, Backend, Op
from .backends.base import Verdict
from .backends.breaker import Breaker
from .backends.budget import check_timeout, with_timeout
from .backends.fallback import Fallback, policies
from .backends.guard import AsyncGuardedBackend, GuardedBackend, guarded
from .blockcache import BlockCache
from .catalog import Catalog, Principal
from .decision import Decision, Reservation
from .errors import ConfigError, CostError
from .keys import DEFAULT_SECRET, GLOBAL_SLOT, field_name, group_slot
from .limit import Limit
from .observe import Observer
from .planner import Planner, Prepared
from .states import LimitState
from .verdict import AlertingVerdicts, Verdicts, rule_state, shadowed

Clock = Callable[[], float]
OnError = Literal["allow", "deny", "local", "raise"]
Target = Decision | str
B = TypeVar("B", Backend, AsyncBackend)


class LimiterBase(Generic[B]):
    """What both limiters share: the catalog, the clock, the planner and the engine.

    ``storage`` is a URL (``memory://``; ``redis://`` once the Redis engine is installed) or an
    engine instance. ``clock`` returns epoch seconds; inject one to move time in tests.
    A shared store sits behind the failure machinery (``quota.backends.guard``): ``on_error``
    (the default policy of every limit; ``"raise"``: no guard, store errors raise
    ``BackendError``), ``timeout`` (seconds per store call), ``breaker`` (a ``Breaker``).
    ``alerts``: a sink of threshold alerts, or several (``quota.webhooks.WebhookSender``),
    for a catalog that declares ``[alerts]``; the observer's optional ``alert`` gets them too.
    """

    _guard_class: type[GuardedBackend] | type[AsyncGuardedBackend] = GuardedBackend

    @staticmethod
    def _open(url: str) -> B:
        raise NotImplementedError

    def __init__(
        self,
        catalog: Catalog | str | Path,
        storage: str | B = "memory://",
        *,
        clock: Clock | None = None,
        on_error: OnError | None = None,
        reservation_ttl: float | None = None,
        secret: bytes | None = None,
        observer: Observer | None = None,
        timeout: float | None = 1.0,
        breaker: Breaker | None = None,
        block_cache: bool = True,
        shadow: bool = False,
        sleep: Callable[[float], object] | None = None,
        alerts: AlertSink | Iterable[AlertSink] | None = None,
    ) -> None:
        # How ``acquire(..., wait=...)`` pauses: None is ``time.sleep`` (``Limiter``) or
        # ``asyncio.sleep`` (``AsyncLimiter``); inject one that moves an injected clock.
        if sleep is not None and not callable(sleep):
            raise ConfigError(f"sleep must be a function of seconds, got {sleep!r}")
        self.sleep = sleep
        self.catalog = catalog if isinstance(catalog, Catalog) else Catalog.load(catalog)
        if on_error not in (None, "allow", "deny", "local", "raise"):
            raise ConfigError(
                f"on_error must be 'allow', 'deny', 'local' or 'raise', got {on_error!r}"
            )
        self.timeout = check_timeout(timeout)
        self.on_error = on_error
        self.observer = observer
        self.blocks = BlockCache() if block_cache else None
        self.shadow = shadow
        ttl = self.catalog.reservation_ttl if reservation_ttl is None else reservation_ttl
        if ttl <= 0:
            raise ConfigError(f"reservation_ttl must be positive, got {ttl!r}")
        self.reservation_ttl_ms = math.ceil(ttl * 1000)
        self.planner = Planner(self.catalog, secret or DEFAULT_SECRET)
        self.verdicts = self._verdicts(observer, alerts)
        store = self._open(storage) if isinstance(storage, str) else storage
        if isinstance(storage, str) and with_timeout(storage, self.timeout) != storage:
            # Opened first as given so that errors quote the caller's URL; engines connect
            # lazily, so opening twice costs no connection.
            store = self._open(with_timeout(storage, self.timeout))
        store_clock = getattr(store, "clock", None)
        self.guard: GuardedBackend | AsyncGuardedBackend | None = None
        if on_error != "raise" and guarded(store):
            fallback = Fallback(policies(self.catalog, on_error), on_error)
            self.guard = self._guard_class(
                store, fallback, breaker=breaker, timeout=self.timeout, observer=observer
            )
        self.backend: B = store if self.guard is None else self.guard  # type: ignore[assignment]
        # Who times the store's calls for the observer: the guard when there is one (it knows
        # which calls failed and which its policy answered), else the limiter.
        self._calls = observer if self.guard is None else None
        # A shared store brings its own clock (Redis: the server's TIME) so that every host
        # of a fleet agrees on one time; an injected clock wins.
        if store_clock is not None and self.guard is not None:
            store_clock = self.guard.clock
        self.clock: Clock = clock or store_clock or time.time

    def _verdicts(
        self, observer: Observer | None, alerts: AlertSink | Iterable[AlertSink] | None
    ) -> Verdicts:
        """The catalog's verdicts; with alerts declared, ones that hand each event to the
        observer's optional ``alert`` method and to every sink in ``alerts`` (e.g. a
        ``quota.webhooks.WebhookSender``)."""
        self.emitter: Emitter | None = None  # counts the targets' errors (``errors``)
        sinks: list[AlertSink] = []
        if alerts is not None:
            sinks = [alerts] if hasattr(alerts, "alert") else list(alerts)  # type: ignore[list-item]
        targets = [getattr(observer, "alert", None), *(s.alert for s in sinks)]
        found = [t for t in targets if callable(t)]
        if not self.catalog.alerting:
            if sinks:
                raise ConfigError("alerts= needs a catalog that declares [alerts]")
            return Verdicts(self.catalog)
        self.emitter = Emitter(found)
        return AlertingVerdicts(self.catalog, self.emitter)

    def _now(self) -> int:
        # Nearest ms: a float clock built by adding steps (t += 6.1) must not lose a millisecond.
        return round(self.clock() * 1000)

    def _before(
        self,
        who: Principal,
        cost: Mapping[str, int],
        request_id: str | None,
        model: str | None,
        features: Iterable[str] | None,
    ) -> Prepared | Decision:
        """The ops to send, or a decision made without the store: an entitlement denial, or
        the block cache's (never for a request id: a replay must answer as the first time)."""
        now = round(self.clock() * 1000)  # _now(), inline: this runs on every acquire
        prep = self.planner.prepare(who, cost, now, request_id, model, features)
        if not isinstance(prep, Prepared):
            return self.verdicts.forbidden(who, now, prep)
        blocks = self.blocks
        if blocks is None or not blocks.slots or request_id is not None:
            return prep
        found = blocks.check(now, prep.ops)
        return prep if found is None else self.verdicts.blocked(prep, *found)

    def _after(self, prep: Prepared, verdict: Verdict, decision: Decision) -> Prepared | Decision:
        """What a denial (``decision``, for the store's ``verdict``) comes to: itself, or when
        only shadow limits denied, the same acquire without them (they report, never deny)."""
        denying = [s.name for s in decision.states if not s.allowed]
        shadow = [name for name in denying if self.shadow or name in prep.shadow]
        if self.blocks is not None and verdict.source == "engine" and not self.shadow:
            # Shadow limits never deny; a held-back limit's denial is told apart by a read.
            skip = [i for i, r in enumerate(prep.rules) if r.shadow or r.held]
            caps = [r.capacity for r in prep.rules]
            self.blocks.record(prep.now, prep.ops, verdict.outcomes, caps, skip)
        if not shadow:
            return decision
        if self.shadow:  # dry run: nothing was charged, and nothing will be
            return shadowed(prep, decision, tuple(shadow))
        if len(shadow) < len(denying):  # an enforced limit denies too
            return decision.replace(shadow_denied=tuple(shadow))
        return self.planner.without_shadow(prep, tuple(shadow))

    def _forget(self, found: tuple[str, str] | Reservation | None) -> None:
        """A settle or release in this process: the slots' cached denials may no longer hold."""
        if self.blocks is None or found is None:
            return
        if isinstance(found, Reservation):
            slots = {found.slot}
            slots.update(c.slot for c in found.charges)
            self.blocks.forget(slots)
        else:
            self.blocks.forget((found[0], GLOBAL_SLOT))

    def _forget_account(self, who: Principal) -> None:
        """A reset or top-up in this process: the cached denials of the account and of its
        groups may not hold."""
        if self.blocks is not None:
            self.blocks.forget((self.planner.account_slot(who.account), *self._groups(who)))

    def _groups(self, who: Principal) -> list[str]:
        """The slots of the principal's groups that the catalog names."""
        kinds, secret = self.catalog.groups, self.planner.secret
        return [
            group_slot(kind, name, secret) for kind, name in who.groups.items() if kind in kinds
        ]

    def _slot_of(self, who: Principal, lim: Limit) -> str | None:
        """Where ``who``'s state of ``lim`` lives: its account's slot, the global one or its
        group's; None when the principal has not the key or the group the limit counts per."""
        scope = lim.scope
        if scope == "global":
            return GLOBAL_SLOT
        if scope == "key" and who.key is None:
            return None
        if scope == "account" or scope == "key":
            return self.planner.account_slot(who.account)
        name = who.groups.get(scope)
        return None if name is None else group_slot(scope, name, self.planner.secret)

    def _target(
        self, target: Target, who: Principal | None
    ) -> tuple[str, str] | Reservation | None:
        """What to settle: (slot, request id) of a recorded reservation, a reservation that
        carries its charges (taken: it settles once), or None when there is nothing to do.

        Request ids are per account, so settling by id needs the principal."""
        if isinstance(target, Decision):
            res = target.reservation
            if res is None:
                return None
            if res.request_id is not None:
                if self.blocks is not None and target.principal.groups:
                    self.blocks.forget(self._groups(target.principal))
                return res.slot, res.request_id
            if not res.open:
                return None
            res.open = False
            return res
        if not isinstance(target, str) or not target:
            raise CostError(f"settle/release takes a Decision or a request id, got {target!r}")
        if who is None:
            raise CostError(
                f"settling request id {target!r} needs who=Principal(...): request ids are per"
                " account"
            )
        if self.blocks is not None and who.groups:  # what ``_forget`` cannot see by the id
            self.blocks.forget(self._groups(who))
        return self.planner.account_slot(who.account), target

    def _peek_ops(self, who: Principal, model: str | None = None) -> list[tuple[Limit, Op]]:
        """Every limit of the plan the principal can be counted by (not those per API key
        without a key, nor those per a group it is not in; per-model ones for ``model``
        only), with its op."""
        plan = self.planner.plan_of(who)
        now = self._now()
        return [
            (lim, self.planner.op(who, plan, lim, now, 0))
            for lim in plan.limits
            if (lim.scope == "account" or self._slot_of(who, lim) is not None)
            and self.planner.selection.meets(lim, model)
        ]

    def _reset_targets(
        self, who: Principal, include_balance: bool, include_groups: bool
    ) -> list[tuple[str, str]]:
        """Every field the catalog may have stored for this account (any plan it was on) and
        its per-key fields for its key; with ``include_groups`` its groups' fields too, which
        every member shares. Balances only with ``include_balance``; global limits are
        nobody's to reset."""
        out: set[tuple[str, str]] = set()
        for plan in self.catalog.plans.values():
            for lim in plan.limits:
                if lim.algorithm == "balance" and not include_balance:
                    continue
                if lim.scope not in ("account", "key") and not include_groups:
                    continue
                slot = self._slot_of(who, lim) if lim.scope != "global" else None
                if slot is not None:
                    out.add((slot, field_name(lim.name, lim.scope, who.key, self.planner.secret)))
        return sorted(out)

    def _top_up_op(self, who: Principal, meter: str, amount: int) -> Op:
        """The op of the balance to top up: the plan's balance named ``meter`` (a group's
        pooled credits are topped up by their limit's name), else its first balance on the
        meter ``meter`` names."""
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_SAFE:
            raise CostError(f"top_up amount must be a positive integer below 2**53, got {amount!r}")
        plan = self.planner.plan_of(who)
        balances = [lim for lim in plan.limits if lim.algorithm == "balance"]
        canonical = self.catalog.meter_of(meter)
        for lim in sorted(balances, key=lambda lim: lim.name != meter):  # the name first
            if lim.name == meter or lim.meter == canonical:
                return self.planner.op(who, plan, lim, self._now(), 0)
        raise CostError(f"plan {plan.name!r} has no balance on meter {meter!r} to top up")

    def _states(self, pairs: list[tuple[Limit, Op]], outcomes: list[Outcome]) -> list[LimitState]:
        return [
            rule_state(self.planner.rule(lim), op, out)
            for (lim, op), out in zip(pairs, outcomes, strict=True)
        ]
