"""What a decision reports: the state of every limit, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class Decision:
    """The answer to one ``acquire``: admitted or not, why, and the state of every limit.

    ``denied_by`` names the limit whose denial binds longest, or ``"model"`` /
    ``"feature:<name>"`` for an entitlement denial. ``retry_after`` (seconds) is when the whole
    cost would fit, None when it never will. ``now`` is the decision's clock (epoch seconds).
    ``source`` says who decided: ``"engine"`` (the configured store), ``"cache"`` (the in-process
    block cache: denied without a round trip), ``"local"`` (the in-process fallback engine while
    the store is unreachable), ``"allow"`` / ``"deny"`` (the failure policy, without any engine).
    ``shadow_denied`` names the shadow-mode limits that would have denied this request.
    """

    allowed: bool
    status: int
    principal: Principal
    now: float
    states: tuple[LimitState, ...] = ()
    denied_by: str | None = None
    retry_after: float | None = None
    code: str | None = None
    message: str | None = None
    request_id: str | None = None
    reservation: Reservation | None = None
    replayed: bool = False
    source: str = "engine"
    shadow_denied: tuple[str, ...] = ()
    header_config: HeaderConfig | None = field(default=None, repr=False, compare=False)

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
