"""Tests for quota.headers: every style's exact strings, binding choice, Retry-After rounding."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import quota
from quota.catalog import HeaderConfig, Principal
from quota.decision import Decision, LimitState
from quota.header_values import go_duration
from quota.headers import render_headers

NOW = 1_700_000_000.0
ZYLA = {
    "X-Zyla-API-Calls-Monthly-Remaining": "requests.remaining",
    "X-Zyla-RateLimit-Limit": "requests.limit",
    "X-Zyla-RateLimit-Reset": "requests.reset",
}


def state(name: str, meter: str = "requests", **kw: Any) -> LimitState:
    values: dict[str, Any] = {
        "algorithm": "sliding_window",
        "limit": 10,
        "remaining": 9,
        "reset_after": 42.0,
        "retry_after": 0.0,
        "window": 60.0,
        "scope": "account",
    }
    values.update(kw)
    return LimitState(name=name, meter=meter, **values)


def decision(
    *states: LimitState,
    allowed: bool = True,
    retry_after: float | None = None,
    config: HeaderConfig | None = None,
) -> Decision:
    return Decision(
        allowed=allowed,
        status=200 if allowed else 429,
        principal=Principal(account="a", plan="basic"),
        now=NOW,
        states=states,
        retry_after=retry_after,
        header_config=config,
    )


RPM = state("rpm")
RPD = state("rpd", limit=7200, remaining=7100, reset_after=3600.0, window=86400.0)
TPM = state("tpm", meter="tokens", limit=40000, remaining=39000, reset_after=1.5)


def test_ietf_two_policies() -> None:
    assert render_headers(decision(RPM, RPD), ["ietf"]) == {
        "RateLimit-Policy": '"rpm";q=10;w=60, "rpd";q=7200;w=86400',
        "RateLimit": '"rpm";r=9;t=42, "rpd";r=7100;t=3600',
    }


def test_ietf_units_windows_and_rounding() -> None:
    conc = state("inflight", algorithm="concurrency", limit=4, remaining=3, window=None)
    credits = state("credits", meter="credits", algorithm="balance", window=None, reset_after=0.0)
    odd = state("odd", window=90.5, reset_after=0.001)
    headers = render_headers(decision(conc, credits, TPM, odd), ["ietf"])
    assert headers["RateLimit-Policy"] == (
        '"inflight";q=4;qu="concurrent-requests", "credits";q=10,'
        ' "tpm";q=40000;w=60, "odd";q=10;w=91'
    )
    assert headers["RateLimit"] == (
        '"inflight";r=3;t=42, "credits";r=9;t=0, "tpm";r=39000;t=2, "odd";r=9;t=1'
    )


def test_openai_binding_per_meter() -> None:
    tpd = state("tpd", meter="tokens", limit=10**6, remaining=39000, reset_after=360.0)
    headers = render_headers(decision(RPM, RPD, TPM, tpd), ["openai"])
    assert headers == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "9",
        "x-ratelimit-reset-requests": "42s",
        # tie on remaining: the longer reset binds
        "x-ratelimit-limit-tokens": "1000000",
        "x-ratelimit-remaining-tokens": "39000",
        "x-ratelimit-reset-tokens": "6m0s",
    }


def test_openai_skips_meters_without_states() -> None:
    assert render_headers(decision(TPM), ["openai"]) == {
        "x-ratelimit-limit-tokens": "40000",
        "x-ratelimit-remaining-tokens": "39000",
        "x-ratelimit-reset-tokens": "1.5s",
    }


def test_legacy_binding_over_all_states_with_epoch_reset() -> None:
    low = state("low", meter="tokens", limit=100, remaining=2, reset_after=12.3)
    assert render_headers(decision(RPM, RPD, low), ["legacy"]) == {
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Remaining": "2",
        "X-RateLimit-Reset": "1700000013",
    }


def test_default_styles() -> None:
    plain = render_headers(decision(RPM))
    assert set(plain) == {
        "RateLimit-Policy",
        "RateLimit",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    }
    legacy = decision(RPM, config=HeaderConfig(styles=["legacy"]))
    assert legacy.headers() == render_headers(legacy) == render_headers(legacy, ["legacy"])


def test_custom_zyla() -> None:
    monthly = state("monthly", limit=1000, remaining=250, reset_after=86399.2, window=None)
    d = decision(monthly, config=HeaderConfig(styles=["custom"], custom=ZYLA))
    assert render_headers(d) == {
        "X-Zyla-API-Calls-Monthly-Remaining": "250",
        "X-Zyla-RateLimit-Limit": "1000",
        "X-Zyla-RateLimit-Reset": "86400",
    }


def test_custom_by_limit_name_all_fields() -> None:
    custom = {
        "X-Used": "rpd.used",
        "X-Retry": "rpd.retry",
        "X-Dotted": "v1.daily.remaining",
        "X-Never": "credits.retry",
    }
    dotted = state("v1.daily", remaining=3)
    broke = state("credits", meter="credits", retry_after=None, limit=5, remaining=7)
    rpd = state("rpd", limit=7200, remaining=7100, retry_after=2.2)
    d = decision(rpd, dotted, broke, config=HeaderConfig(custom=custom))
    assert render_headers(d, ["custom"]) == {"X-Used": "100", "X-Retry": "3", "X-Dotted": "3"}
    used_config = HeaderConfig(styles=["custom"], custom={"U": "credits.used"})
    used = render_headers(decision(broke, config=used_config))
    assert used == {"U": "0"}


def test_custom_missing_ref_omitted() -> None:
    d = decision(RPM, config=HeaderConfig(custom={"X-T": "tokens.limit", "X-R": "rpm.limit"}))
    assert render_headers(d, ["custom"]) == {"X-R": "10"}


@pytest.mark.parametrize("spec", ["requests.left", "requests", ".limit", "requests."])
def test_custom_bad_field(spec: str) -> None:
    d = decision(RPM, config=HeaderConfig(custom={"X-Bad": spec}))
    with pytest.raises(ValueError, match="X-Bad") as err:
        render_headers(d, ["custom"])
    assert repr(spec) in str(err.value)


def test_unknown_style() -> None:
    with pytest.raises(ValueError, match="'draft'"):
        render_headers(decision(RPM), ["ietf", "draft"])


@pytest.mark.parametrize(("retry", "expected"), [(0.2, "1"), (1.0, "1"), (1.01, "2"), (0, "1")])
def test_retry_after_rounding(retry: float, expected: str) -> None:
    headers = render_headers(decision(RPM, allowed=False, retry_after=retry), [])
    assert headers == {"Retry-After": expected}


def test_retry_after_only_on_retryable_denials() -> None:
    assert "Retry-After" not in render_headers(decision(RPM, retry_after=5.0))
    assert "Retry-After" not in render_headers(decision(RPM, allowed=False))
    assert render_headers(decision(allowed=False, retry_after=30.5)) == {"Retry-After": "31"}
    assert render_headers(decision()) == {}


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (0.0004, "0s"),
        (0.02, "20ms"),
        (0.5, "500ms"),
        (0.9996, "1s"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.999, "59.999s"),
        (60.5, "1m0.5s"),
        (360, "6m0s"),
        (3600, "1h0m0s"),
        (3723, "1h2m3s"),
        (86399.5, "23h59m59.5s"),
        (90000, "25h0m0s"),
        (-3, "0s"),
    ],
)
def test_go_duration(seconds: float, expected: str) -> None:
    assert go_duration(seconds) == expected


_secs = st.floats(min_value=-1e6, max_value=1e7, allow_nan=False)
_states = st.builds(
    LimitState,
    name=st.sampled_from(["a", "b", "c.d"]),
    meter=st.sampled_from(["requests", "tokens", "credits"]),
    algorithm=st.sampled_from(["sliding_window", "concurrency", "balance"]),
    limit=st.integers(-5, 10**12),
    remaining=st.integers(-(10**6), 10**12),
    reset_after=_secs,
    retry_after=st.none() | _secs,
    window=st.none() | st.floats(min_value=0.001, max_value=1e8),
    scope=st.just("account"),
)
_ALL_FIELDS = {f"X-{n}-{f}": f"{n}.{f}" for n in ("a", "tokens") for f in ("limit", "used")}
_ALL_FIELDS |= {"X-R": "requests.remaining", "X-S": "c.d.reset", "X-T": "credits.retry"}


@given(st.lists(_states, max_size=5), st.booleans(), st.none() | _secs)
def test_integer_headers_are_digit_strings(
    states: list[LimitState], allowed: bool, retry: float | None
) -> None:
    d = decision(
        *states, allowed=allowed, retry_after=retry, config=HeaderConfig(custom=_ALL_FIELDS)
    )
    headers = render_headers(d, ["ietf", "openai", "legacy", "custom"])
    for name, value in headers.items():
        if name in ("RateLimit", "RateLimit-Policy"):
            for item in value.split(", "):
                for param in item.split(";")[1:]:
                    key, _, num = param.partition("=")
                    assert key == "qu" or (num.isascii() and num.isdigit()), value
        elif not name.startswith("x-ratelimit-reset-"):
            assert value.isascii() and value.isdigit(), (name, value)
    if "Retry-After" in headers:
        assert int(headers["Retry-After"]) >= 1


STATES = st.lists(
    st.builds(
        state,
        st.sampled_from(["rpm", "rpd", "tpd", "tpm", "search", "credits"]),
        st.sampled_from(["requests", "tokens", "search"]),
        limit=st.integers(0, 10**9),
        remaining=st.integers(-(10**6), 10**9),
        reset_after=st.floats(-5, 10**6, allow_nan=False),
        window=st.none() | st.floats(0, 10**7, allow_nan=False),
        algorithm=st.sampled_from(["sliding_window", "calendar", "concurrency", "balance"]),
    ),
    max_size=6,
)


@given(STATES, st.sampled_from([["ietf", "openai"], ["openai"], ["ietf", "legacy"], []]))
def test_the_cached_rendering_says_what_the_full_one_says(
    states: list[LimitState], styles: list[str]
) -> None:
    config = HeaderConfig(styles=styles)  # type: ignore[arg-type]
    d = decision(*states, config=config)
    assert d.headers() == render_headers(d, styles)  # the catalog's styles: the cached path
    assert d.headers() == render_headers(d, styles)  # and again, from the cache


def test_headers_kept_per_template_equal_headers_made_afresh(clock: Any) -> None:
    """A decision renders from its template's memo once the template has been seen; a copy
    without the memo (``replace``) renders the same, on every plan, admitted or denied."""
    limiter = quota.Limiter(quota.Catalog.load("zylo"), "memory://", clock=clock)
    for plan in ("basic", "go", "enterprise"):
        who = quota.Principal(account=f"memo-{plan}", plan=plan, key="k")
        for i in range(14):
            d = limiter.acquire(who, {"requests": 1, "tokens": 100 * (i + 1), "credits": 7})
            assert d.headers() == d.replace().headers(), (plan, i)
            clock.advance(1)


def test_a_balance_limit_grows_in_the_headers_after_a_top_up(clock: Any) -> None:
    """A balance's limit is its grant or more after top-ups: its headers are never kept per
    template, so the policy follows the balance."""
    limiter = quota.Limiter(quota.Catalog.load("zylo"), "memory://", clock=clock)
    who = quota.Principal(account="memo-topup", plan="go", key="k")
    first = limiter.acquire(who, {"requests": 1, "credits": 1}).headers()["RateLimit-Policy"]
    assert '"credits";q=10000000' in first
    limiter.top_up(who, "credits", 5_000_000)
    again = limiter.acquire(who, {"requests": 1, "credits": 1}).headers()["RateLimit-Policy"]
    assert '"credits";q=14999998' in again  # 10M - 1, topped up by 5M, - 1
