"""Render a decision's limit states as HTTP response headers in several styles.

Styles: ``ietf`` (RateLimit-Policy / RateLimit, draft-ietf-httpapi-ratelimit-headers-11),
``openai`` (x-ratelimit-*-requests / -tokens), ``legacy`` (X-RateLimit-*, GitHub style) and
``custom`` (names from the catalog's ``[headers] custom`` table). Every integer value is a plain
decimal string, never negative; ``Retry-After`` accompanies every denial that can be retried.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from .catalog import HeaderConfig
from .header_values import ceil_seconds, count, go_duration, sf_string
from .states import LimitState, binding

STYLES = ("ietf", "openai", "legacy", "custom")
DEFAULT_STYLES = ("ietf", "openai")
CUSTOM_FIELDS = ("limit", "remaining", "used", "reset", "retry")

# Quota units the draft registers (section 3.1.2), by meter. "requests" is the default and is
# omitted; meters without a registered unit (tokens, credits) carry no ``qu`` at all, since the
# draft only allows values from its IANA registry (section 10.3, Specification Required).
_QUOTA_UNITS = {"content-bytes": "content-bytes", "bytes": "content-bytes"}


class Rendered(Protocol):
    """What headers are rendered from: a ``Decision``, or a ``Snapshot`` of a peek."""

    @property
    def allowed(self) -> bool: ...
    @property
    def now(self) -> float: ...
    @property
    def retry_after(self) -> float | None: ...
    @property
    def states(self) -> Sequence[LimitState]: ...
    @property
    def header_config(self) -> HeaderConfig | None: ...


class Snapshot(NamedTuple):
    """An account's current state, to be rendered as headers (responses that charge nothing:
    free endpoints, views, entitlement denials)."""

    states: Sequence[LimitState]
    now: float
    header_config: HeaderConfig | None
    allowed: bool = True
    retry_after: float | None = None


def render_headers(decision: Rendered, styles: Sequence[str] | None = None) -> dict[str, str]:
    """Headers for ``decision`` in ``styles`` (default: the catalog's, else ietf + openai).

    Unknown styles raise ValueError before anything is rendered.
    """
    config = decision.header_config
    if styles is None:
        styles = config.styles if config is not None else DEFAULT_STYLES
        if not (config is not None and config.custom and "custom" in styles):
            return _fast(decision, tuple(styles))
    for style in styles:
        if style not in STYLES:
            raise ValueError(f"unknown header style {style!r}; known: {', '.join(STYLES)}")
    custom = dict(config.custom) if config is not None else {}
    renderers: dict[str, Callable[[Rendered], dict[str, str]]] = {
        "ietf": ietf_headers,
        "openai": openai_headers,
        "legacy": legacy_headers,
        "custom": lambda d: custom_headers(d, custom),
    }
    out: dict[str, str] = {}
    for style in dict.fromkeys(styles):
        out.update(renderers[style](decision))
    if not decision.allowed and decision.retry_after is not None:
        out["Retry-After"] = str(max(1, ceil_seconds(decision.retry_after)))
    return out


class _Shape(NamedTuple):
    """What headers say of a set of states that does not change from request to request."""

    policy: str  # RateLimit-Policy, whole
    names: tuple[str, ...]  # each state's name as a structured-field string
    # openai: (its three header names, the indices of the meter's states), per meter
    binding: tuple[tuple[tuple[str, str, str], tuple[int, ...]], ...]
    limits: tuple[str, ...]  # each state's limit as a header value
    ietf: str  # RateLimit, with a %d for each state's remaining and reset
    fixed: bool  # no balance among the states: the limits cannot change under a template


#: (styles, (name, meter, algorithm, limit, window) of each state) -> its _Shape; bounded
_SHAPES: dict[tuple[object, ...], _Shape] = {}
_STATIC = operator.itemgetter(0, 1, 2, 3, 7)


def _shape(states: Sequence[LimitState]) -> _Shape:
    policy = ietf_headers(Snapshot(states, 0.0, None)).get("RateLimit-Policy", "")
    meters = tuple(
        (
            (
                f"x-ratelimit-limit-{meter}",
                f"x-ratelimit-remaining-{meter}",
                f"x-ratelimit-reset-{meter}",
            ),
            tuple(i for i, s in enumerate(states) if s.meter == meter),
        )
        for meter in ("requests", "tokens")
    )
    return _Shape(
        policy,
        tuple(sf_string(s.name) for s in states),
        tuple(m for m in meters if m[1]),
        tuple(count(s.limit) for s in states),
        ", ".join(f"{sf_string(s.name).replace('%', '%%')};r=%d;t=%d" for s in states),
        all(s.algorithm != "balance" for s in states),  # a balance's limit grows by top-ups
    )


def _fast(decision: Rendered, styles: tuple[str, ...]) -> dict[str, str]:
    """``render_headers`` for the catalog's own styles without custom names: what does not
    change between requests (policies, quoted names, limits) is rendered once per set of
    states, so a decision's headers cost a few string joins."""
    states = decision.states
    memo = getattr(decision, "header_memo", None)  # the template's, when it may serve
    shape = None if memo is None else memo.get(styles)
    if shape is None:
        shape = _shaped(states, styles)
        if memo is not None and shape.fixed:
            memo[styles] = shape
    out: dict[str, str] = {}
    for style in styles:
        if style == "ietf" and states:
            out["RateLimit-Policy"] = shape.policy
            ceil = math.ceil
            values: list[int] = []
            for s in states:
                left, reset = s[4], s[5]
                values += (left if left > 0 else 0, ceil(reset) if reset > 0 else 0)
            out["RateLimit"] = shape.ietf % tuple(values)
        elif style == "openai":
            for names, found in shape.binding:
                i = found[0] if len(found) == 1 else _bind(states, found)
                s = states[i]
                out[names[0]] = shape.limits[i]
                out[names[1]] = str(s[4] if s[4] > 0 else 0)
                out[names[2]] = go_duration(s[5])
        elif style == "legacy":
            out.update(legacy_headers(decision))
    if not decision.allowed and decision.retry_after is not None:
        out["Retry-After"] = str(max(1, ceil_seconds(decision.retry_after)))
    return out


def _shaped(states: Sequence[LimitState], styles: tuple[str, ...]) -> _Shape:
    """The shape of ``states`` from the bounded cache (keyed by their static fields), made
    on first sight; ValueError for an unknown style."""
    key = (styles, tuple(map(_STATIC, states)))
    shape = _SHAPES.get(key)
    if shape is None:
        for style in styles:
            if style not in STYLES:
                raise ValueError(f"unknown header style {style!r}; known: {', '.join(STYLES)}")
        if len(_SHAPES) >= 4096:
            _SHAPES.clear()
        shape = _SHAPES[key] = _shape(states)
    return shape


def _bind(states: Sequence[LimitState], found: tuple[int, ...]) -> int:
    """The index of the binding state among ``found``: fewest remaining, then longest reset,
    then the first (as ``binding`` chooses)."""
    best = found[0]
    for i in found[1:]:
        s, b = states[i], states[best]
        if s[4] < b[4] or (s[4] == b[4] and s[5] > b[5]):
            best = i
    return best


def ietf_headers(decision: Rendered) -> dict[str, str]:
    """``RateLimit-Policy`` and ``RateLimit`` as structured-field Lists, one item per state.

    ``q`` is the limit, ``w`` the window in whole seconds (rounded up; omitted for balances
    and concurrency), ``r`` what remains and ``t`` the seconds until the reset (rounded up).
    ``qu`` is set only to a unit the draft registers: ``concurrent-requests`` for concurrency
    limits, ``content-bytes`` for a bytes meter; requests are the default unit.
    """
    if not decision.states:
        return {}
    policies: list[str] = []
    limits: list[str] = []
    for s in decision.states:
        name = sf_string(s.name)
        policy = f"{name};q={count(s.limit)}"
        unit = "concurrent-requests" if s.algorithm == "concurrency" else _QUOTA_UNITS.get(s.meter)
        if unit is not None:
            policy += f";qu={sf_string(unit)}"
        if s.window is not None and s.window > 0:
            policy += f";w={ceil_seconds(s.window)}"
        policies.append(policy)
        limits.append(f"{name};r={count(s.remaining)};t={ceil_seconds(s.reset_after)}")
    return {"RateLimit-Policy": ", ".join(policies), "RateLimit": ", ".join(limits)}


def openai_headers(decision: Rendered) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` for the binding state
    of each of those meters; the reset is a Go duration string ("6m0s"), as OpenAI sends it."""
    out: dict[str, str] = {}
    for meter in ("requests", "tokens"):
        s = binding([st for st in decision.states if st.meter == meter])
        if s is not None:
            out[f"x-ratelimit-limit-{meter}"] = count(s.limit)
            out[f"x-ratelimit-remaining-{meter}"] = count(s.remaining)
            out[f"x-ratelimit-reset-{meter}"] = go_duration(s.reset_after)
    return out


def legacy_headers(decision: Rendered) -> dict[str, str]:
    """``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` for the binding state of all.

    ``X-RateLimit-Reset`` is the epoch second of the reset, ``ceil(now + reset_after)``, as
    GitHub and slowapi send it (not delta seconds): what most legacy clients parse.
    """
    s = binding(decision.states)
    if s is None:
        return {}
    return {
        "X-RateLimit-Limit": count(s.limit),
        "X-RateLimit-Remaining": count(s.remaining),
        "X-RateLimit-Reset": str(ceil_seconds(decision.now + s.reset_after)),
    }


def custom_headers(decision: Rendered, custom: dict[str, str]) -> dict[str, str]:
    """Headers named by the catalog: ``{header: "<limit name or meter>.<field>"}``.

    The spec splits at its last dot (limit names may contain dots). The ref is a limit name
    first, else a meter (its binding state); a ref matching no state omits the header, as does
    ``retry`` when the request can never fit. A bad field raises ValueError.
    """
    out: dict[str, str] = {}
    for header, spec in custom.items():
        ref, dot, field = spec.rpartition(".")
        if not dot or not ref or field not in CUSTOM_FIELDS:
            raise ValueError(
                f"custom header {header!r}: bad spec {spec!r}; expected '<limit or meter>.<field>'"
                f" with field one of {', '.join(CUSTOM_FIELDS)}"
            )
        s = _lookup(decision.states, ref)
        if s is None:
            continue
        value = _field(s, field)
        if value is not None:
            out[header] = value
    return out


def _lookup(states: Sequence[LimitState], ref: str) -> LimitState | None:
    """The state named ``ref``, else the binding state of meter ``ref``, else None."""
    for s in states:
        if s.name == ref:
            return s
    return binding([s for s in states if s.meter == ref])


def _field(s: LimitState, field: str) -> str | None:
    """One custom field of a state as a digit string; None for ``retry`` that never fits."""
    if field == "limit":
        return count(s.limit)
    if field == "remaining":
        return count(s.remaining)
    if field == "used":
        return count(s.limit - s.remaining)
    if field == "reset":
        return str(ceil_seconds(s.reset_after))
    return None if s.retry_after is None else str(ceil_seconds(s.retry_after))
