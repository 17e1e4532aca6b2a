"""From what the engine answered to the public ``Decision``: states, the binding denial, its
message, shadow mode, the block cache's answer, and the failure policy's "store unavailable".

The planner says what to ask the engine (``quota.planner``); this module says what the answer
means to the caller. Neither does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

from .alerts import WATCHED, Alert, events
from .algorithms import Charge, Outcome
from .backends.base import Op, Verdict
from .blockcache import Block
from .catalog import Catalog, Principal
from .decision import Decision, Reservation
from .history import HISTORY
from .messages import message
from .planner import Forbidden, Prepared, Rule
from .states import LimitState

#: The failure policy's refusal: the store cannot be reached and a limit fails closed.
UNAVAILABLE_STATUS = 503
UNAVAILABLE_CODE = "quota_unavailable"
#: A denial by a limit's share held back for higher-priority plans (the whole would admit).
RESERVED_CODE = "capacity_reserved"

Triple = tuple[Rule, Op, Outcome]


class Verdicts:
    """Decisions for one catalog (its header styles go on every decision)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def forbidden(self, who: Principal, now: int, lacking: Forbidden) -> Decision:
        """The 403 of an entitlement the plan lacks (nothing was charged)."""
        what, code, message = lacking
        return Decision(
            allowed=False,
            status=403,
            principal=who,
            now=now / 1000,
            denied_by=what,
            code=code,
            message=message,
            header_config=self.catalog.headers,
        )

    def decision(self, prep: Prepared, verdict: Verdict) -> Decision:
        """The public Decision for an engine verdict (replays map outcomes by field)."""
        triples = _triples(prep, verdict)
        if verdict.allowed:
            return self._admitted(prep, verdict, triples)
        denial = self._denied(prep, verdict, _states(triples))
        # The failure policy refused (store down, limit fails closed): 503, not the limit's.
        return store_unavailable(denial) if verdict.source == "deny" else denial

    def _admitted(
        self,
        prep: Prepared,
        verdict: Verdict,
        triples: Sequence[Triple],
    ) -> Decision:
        charges: tuple[Charge, ...] = ()
        if prep.request_id is None:  # no record kept: the handle carries the charges
            charges = tuple(
                [
                    Charge(
                        op.slot, op.field, op.meter, op.algorithm, op.params, out.anchor, op.cost
                    )
                    for _, op, out in triples
                ]
            )
        return Decision(
            True,
            200,
            prep.who,
            prep.now / 1000,
            partial(_states, triples),  # built only if the caller reads them
            request_id=prep.request_id,
            reservation=Reservation(prep.request_id, prep.slot, charges),
            replayed=verdict.replayed,
            source=verdict.source,
            shadow_denied=prep.shadow_denied,
            header_config=self.catalog.headers,
            header_memo=_memo(prep, verdict),
        )

    def _denied(self, prep: Prepared, verdict: Verdict, states: tuple[LimitState, ...]) -> Decision:
        denying = [s for s in states if not s.allowed]
        # The denial that binds longest: "never" beats any finite retry.
        worst = max(denying, key=lambda s: float("inf") if s.retry_after is None else s.retry_after)
        retry = None if any(s.retry_after is None for s in denying) else worst.retry_after
        i = next(i for i, r in enumerate(prep.rules) if r.name == worst.name)
        rule = prep.rules[i]
        denial = Decision(
            allowed=False,
            principal=prep.who,
            now=prep.now / 1000,
            states=states,
            request_id=prep.request_id,
            header_config=self.catalog.headers,
            header_memo=_memo(prep, verdict),
            status=worst.status,
            denied_by=worst.name,
            retry_after=retry,
            code=worst.code,
            message=message(prep.plan, rule.limit, retry),
            source=verdict.source,
            shadow_denied=prep.shadow_denied,
        )
        if rule.held and reserve_decided(rule, worst.remaining, prep.ops[i].cost):
            return reserved(prep, denial)
        return denial

    def probe(self, prep: Prepared, decision: Decision | Prepared) -> Op | None:
        """The read that tells a denial by a limit held back for higher priorities apart, when
        what the engine answered cannot: nothing of the open share remains and the cost fits
        in the held part. The op of that limit with its whole capacity, to peek (its outcome
        admits when the whole would have: ``reserved``); None when no read is needed."""
        if not isinstance(decision, Decision) or decision.allowed or decision.source != "engine":
            return None
        for rule, op in zip(prep.rules, prep.ops, strict=True):
            if rule.name == decision.denied_by:
                if not rule.held or decision.code == RESERVED_CODE:
                    return None
                state = next(s for s in decision.states if s.name == rule.name)
                if reserve_decided(rule, state.remaining, op.cost) is not None:
                    return None
                return op._replace(params=(op.params[0] + rule.held, *op.params[1:]))
        return None

    @staticmethod
    def told(prep: Prepared, decision: Decision | Prepared, whole: Outcome) -> Decision | Prepared:
        """``decision`` after its ``probe``: the reserve's denial when the whole capacity
        admits the cost (``whole``: the probe's outcome), else as it was."""
        if whole.allowed and isinstance(decision, Decision):
            return reserved(prep, decision)
        return decision

    def blocked(self, prep: Prepared, index: int, block: Block) -> Decision:
        """The denial the block cache answers with: the remembered limit (the op at ``index``),
        its retry-after counted down to ``prep.now`` (a lower bound when this cost is larger)."""
        rule, op = prep.rules[index], prep.ops[index]
        retry = block.until - prep.now
        out = Outcome(False, block.remaining, max(0, block.reset_at - prep.now), retry)
        return Decision(
            allowed=False,
            principal=prep.who,
            now=prep.now / 1000,
            states=(rule_state(rule, op, out),),
            header_config=self.catalog.headers,
            status=rule.status,
            denied_by=rule.name,
            retry_after=retry / 1000,
            code=rule.code,
            message=message(prep.plan, rule.limit, retry / 1000),
            source="cache",
        )


class AlertingVerdicts(Verdicts):
    """``Verdicts`` for a catalog that declares alerts: an admitted decision carries the
    thresholds its engine call newly reached (``Decision.alerts``), each handed to ``emit``
    as well. Catalogs without alerts keep the plain ``Verdicts``, whose path is unchanged."""

    def __init__(self, catalog: Catalog, emit: Callable[[Iterable[Alert]], None]) -> None:
        super().__init__(catalog)
        self.emit = emit

    def decision(self, prep: Prepared, verdict: Verdict) -> Decision:
        decision = super().decision(prep, verdict)
        crossings = getattr(verdict, "crossings", None)  # an engine's ``Alerted`` verdict
        tpl = prep.template
        if not crossings or tpl is None or WATCHED not in tpl.targets.memo:
            return decision
        who, watched = prep.who, tpl.targets.memo[WATCHED]
        found = events(
            who.account, prep.plan.name, watched, verdict.outcomes, crossings, prep.now,
            prep.request_id,
        )  # fmt: skip
        self.emit(found)
        return decision.replace(alerts=found)


def _memo(prep: Prepared, verdict: Verdict) -> dict[object, Any] | None:
    """Where the headers may keep what they derive once per template: its memo, when the
    decision's states are the template's rules in order (not a replay's recorded subset)."""
    template = prep.template
    return None if template is None or verdict.replayed else template.memo


def _triples(prep: Prepared, verdict: Verdict) -> list[Triple]:
    """(rule, op, outcome) of every op the engine answered; a replay answers by field."""
    if not verdict.replayed:
        return list(zip(prep.rules, prep.ops, verdict.outcomes, strict=True))
    by_field = dict(zip(verdict.fields, verdict.outcomes, strict=True))
    return [
        (r, op, by_field[op.field])
        for r, op in zip(prep.rules, prep.ops, strict=True)
        if op.field in by_field
    ]


def _states(triples: Sequence[Triple]) -> tuple[LimitState, ...]:
    """The public states of the engine's outcomes (usage history is not one)."""
    return tuple([rule_state(r, op, out) for r, op, out in triples if r.algorithm != HISTORY])


def shadowed(prep: Prepared, denial: Decision, denied: tuple[str, ...]) -> Decision:
    """Shadow mode for the whole limiter: the denial reported, the request admitted (and
    charged nothing, so there is nothing to settle)."""
    return denial.replace(
        allowed=True,
        status=200,
        denied_by=None,
        retry_after=None,
        code=None,
        message=None,
        reservation=Reservation(prep.request_id, prep.slot, (), open=False),
        shadow_denied=denied,
    )


def store_unavailable(decision: Decision) -> Decision:
    """A denial by the ``deny`` policy as it must read: 503, the store is unavailable (not the
    budget spent), with the short retry of the failure policy."""
    retry = decision.retry_after
    when = f"; retry in {retry:.0f} s" if retry is not None else ""
    return decision.replace(
        status=UNAVAILABLE_STATUS,
        code=UNAVAILABLE_CODE,
        message=f"the quota store is unavailable and limit {decision.denied_by!r} cannot be"
        f" checked without it{when}",
    )


def reserve_decided(rule: Rule, remaining: int, cost: int) -> bool | None:
    """Whether the denial of ``cost`` by the held-back ``rule`` (``remaining`` of its open
    share left) would have been admitted without the reserve: used + cost within the whole
    capacity. None when only a read of the whole can tell (nothing of the open share left, so
    how far past it the usage is is unknown, and the cost fits in the held part)."""
    if remaining > 0:
        return cost - remaining <= rule.held
    return None if cost <= rule.held else False


def reserved(prep: Prepared, denial: Decision) -> Decision:
    """``denial`` as the reserve's: code ``capacity_reserved``, a message that says how much
    of the limit is open to the plan and that the rest is held for higher priorities."""
    rule = next(r for r in prep.rules if r.name == denial.denied_by)
    states = tuple(
        s._replace(code=RESERVED_CODE) if s.name == rule.name else s for s in denial.states
    )
    text = message(prep.plan, rule.limit, denial.retry_after, reserved=True)
    return denial.replace(code=RESERVED_CODE, message=text, states=states)


def rule_state(r: Rule, op: Op, out: Outcome) -> LimitState:
    """The LimitState of one rule for one engine outcome."""
    window = r.window
    if r.algorithm == "calendar":
        window = (op.params[2] - op.params[1]) / 1000
    retry = out.retry_after
    return LimitState(
        r.name,
        r.meter,
        r.algorithm,
        # A balance's "limit" is its grant, or more after top-ups: never below what remains.
        max(r.capacity, out.remaining) if r.algorithm == "balance" else r.capacity,
        out.remaining,
        out.reset_after / 1000,
        None if retry is None else retry / 1000,
        window,
        r.scope,
        out.allowed,
        r.status,
        r.code,
    )
