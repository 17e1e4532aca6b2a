"""What a decision reports: the state of every limit, and the verdict."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass, field
from typing import Any

from .alerts import Alert
from .algorithms import Charge
from .catalog import HeaderConfig, Principal
from .headers import render_headers
from .states import LimitState, binding

__all__ = ["Decision", "LimitState", "Reservation", "binding"]


@dataclass(slots=True)
class Reservation:
    """Handle on what an admitted acquire charged, for ``settle`` and ``release``.

    With the caller's ``request_id`` the engine keeps a record under it: acquire is idempotent
    and any process can settle by id. Without one nothing is stored per request (state stays
    one small hash per account however busy it is): the handle carries the charges and settles
    them once.
    """

    request_id: str | None
    slot: str
    charges: tuple[Charge, ...] = ()
    open: bool = field(default=True, compare=False)


#: The fields of a Decision, in order (its positional arguments, its repr and its equality).
FIELDS = (
    "allowed",
    "status",
    "principal",
    "now",
    "states",
    "denied_by",
    "retry_after",
    "code",
    "message",
    "request_id",
    "reservation",
    "replayed",
    "source",
    "shadow_denied",
    "alerts",
)


class Decision:
    """The answer to one ``acquire``: admitted or not, why, and the state of every limit.

    ``denied_by`` names the limit whose denial binds longest, or ``"model"`` /
    ``"feature:<name>"`` for an entitlement denial. ``retry_after`` (seconds) is when the whole
    cost would fit, None when it never will. ``now`` is the decision's clock (epoch seconds).
    ``source`` says who decided: ``"engine"`` (the configured store), ``"cache"`` (the in-process
    block cache: denied without a round trip), ``"local"`` (the in-process fallback engine while
    the store is unreachable), ``"allow"`` / ``"deny"`` (the failure policy, without any engine).
    ``shadow_denied`` names the shadow-mode limits that would have denied this request.
    ``alerts``: the thresholds this decision newly reached (``quota.alerts.Alert``; each is
    reported once per window, by the one decision that reached it).

    Immutable, like a frozen dataclass (``replace`` gives a changed copy), but built for the
    hot path: the fields a decision does not set are class defaults, and ``states`` may be
    given as a function that builds them on first read (an admitted decision whose caller
    never looks at them never pays for them).
    """

    allowed: bool
    status: int
    principal: Principal
    now: float
    denied_by: str | None = None
    retry_after: float | None = None
    code: str | None = None
    message: str | None = None
    request_id: str | None = None
    reservation: Reservation | None = None
    replayed: bool = False
    source: str = "engine"
    shadow_denied: tuple[str, ...] = ()
    alerts: tuple[Alert, ...] = ()  # thresholds this decision newly reached (quota.alerts)
    header_config: HeaderConfig | None = None
    #: Where ``headers()`` keeps what it derives once per template (the template's memo;
    #: None when the states are not the template's rules in order). Not a field.
    header_memo: dict[object, Any] | None = None
    _states: tuple[LimitState, ...] | None = ()
    _build: Callable[[], tuple[LimitState, ...]] | None = None

    def __init__(
        self,
        allowed: bool,
        status: int,
        principal: Principal,
        now: float,
        states: tuple[LimitState, ...] | Callable[[], tuple[LimitState, ...]] = (),
        **fields: Any,
    ) -> None:
        own = self.__dict__
        own["allowed"] = allowed
        own["status"] = status
        own["principal"] = principal
        own["now"] = now
        if callable(states):
            own["_states"], own["_build"] = None, states
        elif states:
            own["_states"] = tuple(states)
        if fields:
            unknown = fields.keys() - _OPTIONAL
            if unknown:
                raise TypeError(f"Decision got unexpected fields: {', '.join(sorted(unknown))}")
            own.update(fields)

    @property
    def states(self) -> tuple[LimitState, ...]:
        """The state of every limit that was evaluated (built on first read when lazy)."""
        states = self._states
        if states is None:
            assert self._build is not None
            states = self.__dict__["_states"] = self._build()
            self.__dict__["_build"] = None
        return states

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}: a Decision is immutable")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}: a Decision is immutable")

    def replace(self, **changes: Any) -> Decision:
        """A copy with ``changes`` (like ``dataclasses.replace``)."""
        values = {name: getattr(self, name) for name in FIELDS}
        values["header_config"] = self.header_config
        values.update(changes)
        return Decision(**values)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decision):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in FIELDS)
        return f"Decision({inner})"

    def __bool__(self) -> bool:
        return self.allowed

    def headers(self, styles: list[str] | None = None) -> dict[str, str]:
        """Response headers in the catalog's styles (or ``styles``), ``Retry-After`` on denials."""
        return render_headers(self, styles)

    def error_body(self) -> dict[str, dict[str, str | None]] | None:
        """The OpenAI-shaped error body for a denial; None when allowed."""
        if self.allowed:
            return None
        kind = {402: "insufficient_quota", 403: "permission_error", 503: "server_error"}.get(
            self.status, "rate_limit_error"
        )
        return {
            "error": {
                "message": self.message or "request denied",
                "type": kind,
                "param": None,
                "code": self.code,
            }
        }

    def state(self, name: str) -> LimitState:
        """The state of the limit called ``name``; KeyError naming it when absent."""
        for s in self.states:
            if s.name == name:
                return s
        raise KeyError(f"no limit named {name!r} in this decision")


_OPTIONAL = frozenset(FIELDS[5:]) | {"header_config", "header_memo"}
