"""Catalog loading and validation: built-ins, every file format, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import quota
from quota.loader import builtin_names

GOOD = """
name = "tiny"
[meters]
aliases = { google_search = "search", url_context = "search" }
[models]
"big-*" = { tier = "premium", input_price = 1_000_000, output_price = 2_000_000 }
[plans.free]
models = ["basic"]
limits = [
  { name = "rpm", meter = "requests", rate = "10/minute" },
  { name = "rpd", meter = "requests", rate = "7200 per day", algorithm = "calendar" },
  { name = "search", meter = "search", rate = "5/minute", scope = "key" },
]
[plans.paid]
models = ["basic", "premium"]
features = ["tools", "search"]
limits = [
  { name = "rpd", meter = "requests", limit = 100000, period = "day", algorithm = "calendar" },
  { name = "credits", meter = "credits", algorithm = "balance", grant = 5000 },
]
"""


def test_builtins_load_by_name() -> None:
    assert builtin_names() == ["zyla", "zylo"]
    zylo = quota.Catalog.load("zylo")
    assert list(zylo.plans) == ["basic", "go", "pro", "mega", "enterprise"]
    zyla = quota.Catalog.load("zyla")
    assert list(zyla.plans) == ["trial", "basic", "pro"]
    assert all(p.success_only for p in zyla.plans.values())


def test_zylo_encodes_the_table() -> None:
    c = quota.Catalog.load("zylo")
    caps = {name: {lim.name: lim.amount for lim in plan.limits} for name, plan in c.plans.items()}
    assert caps["basic"] == {"rpm": 10, "rpd": 7200, "tpd": 200_000, "web_extract": 10}
    assert caps["go"]["rpd"] == 28_800 and caps["go"]["tpd"] == 512_000
    assert caps["pro"]["rpd"] == 43_200 and caps["pro"]["tpd"] == 1_000_000
    assert caps["mega"]["rpd"] == 86_400 and caps["mega"]["tpd"] == 5_000_000
    assert "rpd" not in caps["enterprise"] and "tpd" not in caps["enterprise"]
    grants = {n: p.limits_on("credits")[0].grant for n, p in c.plans.items() if n != "basic"}
    assert grants == {
        "go": 10_000_000,
        "pro": 50_000_000,
        "mega": 200_000_000,
        "enterprise": 400_000_000,
    }
    assert c.plans["pro"].limits_on("code_execution")[0].amount == 20
    assert "code_execution" not in c.plans["go"].features
    assert c.canonical({"google_search": 1, "url_context": 2}) == {"search": 3}
    for model in ("claude-opus-4.8", "gpt-5.5", "gemini-3.1-pro-preview"):
        assert c.tier_of(model) == "premium"
    assert c.tier_of("some-new-model") == "basic"


@pytest.mark.parametrize("suffix", [".toml", ".json", ".yaml"])
def test_every_format_loads_the_same_model(tmp_path: Path, suffix: str) -> None:
    import yaml

    from quota.loader import tomllib

    data = tomllib.loads(GOOD)
    path = tmp_path / f"plans{suffix}"
    if suffix == ".toml":
        path.write_text(GOOD)
    elif suffix == ".json":
        path.write_text(json.dumps(data))
    else:
        path.write_text(yaml.safe_dump(data))
    c = quota.Catalog.load(path)
    assert c == quota.Catalog.load(data)
    assert c.plans["free"].limits[1].period_ms == 86_400_000
    assert c.tier_of("big-model-2") == "premium"
    assert c.price("big-model-2", 1_000, 500) == 2_000
    assert c.allows_feature(c.plans["paid"], "google_search")
    assert not c.allows_feature(c.plans["free"], "url_context")
    assert quota.Catalog.load(str(path)).name == "tiny"


def bad(text: str, tmp_path: Path) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(quota.CatalogError) as info:
        quota.Catalog.load(path)
    return str(info.value)


@pytest.mark.parametrize(
    ("limit", "needles"),
    [
        ('{ name = "rpm", meter = "requests", rate = "10/fortnight" }', ["'rpm'", "10/fortnight"]),
        (
            '{ name = "rpm", meter = "requests", rat = "10/minute" }',
            ["'rpm'", "unknown field 'rat'"],
        ),
        ('{ name = "rpm", meter = "requests" }', ["'rpm'", "missing 'rate'"]),
        ('{ name = "rpm", meter = "requests", rate = "0/minute" }', ["at least 1"]),
        (
            '{ name = "rpm", meter = "requests", rate = "5/minute", algorithm = "leaky" }',
            ["'rpm'", "algorithm"],
        ),
        (
            '{ name = "c", meter = "credits", algorithm = "balance", rate = "1/day" }',
            ["'c'", "grant"],
        ),
        (
            '{ name = "m", meter = "requests", rate = "10/minute", algorithm = "calendar" }',
            ["'m'", "calendar limit counts per day, week, month, year"],
        ),
        (
            '{ name = "m", meter = "requests", rate = "9/day", anchor = "cycle", '
            'algorithm = "calendar" }',
            ["'m'", "monthly"],
        ),
        (
            '{ name = "z", meter = "requests", rate = "9/day", algorithm = "calendar", '
            'timezone = "Mars/Base" }',
            ["'z'", "Mars/Base"],
        ),
        (
            '{ name = "s", meter = "google_search", rate = "9/minute" }',
            ["'s'", "alias of 'search'"],
        ),
        (
            '{ name = "b", meter = "requests", rate = "9/minute", burst = 3 }',
            ["'b'", "token_bucket only"],
        ),
    ],
)
def test_bad_limits_name_plan_limit_and_field(
    tmp_path: Path, limit: str, needles: list[str]
) -> None:
    text = (
        f'[meters]\naliases = {{ google_search = "search" }}\n[plans.basic]\nlimits = [ {limit} ]\n'
    )
    message = bad(text, tmp_path)
    assert "plan 'basic'" in message
    for needle in needles:
        assert needle in message, message


def test_other_bad_files(tmp_path: Path) -> None:
    assert "not valid TOML" in bad("[plans.basic\n", tmp_path)
    assert "field 'plans': required field is missing" in bad("name = 'x'\n", tmp_path)
    assert "at least one plan" in bad("[plans]\n", tmp_path)
    message = bad('[plans.basic]\nmodles = ["basic"]\n', tmp_path)
    assert "plan 'basic'" in message and "'modles'" in message and "unknown field" in message
    two = (
        '[plans.a]\nlimits = [{ name = "x", meter = "requests", rate = "1/minute" }]\n'
        '[plans.b]\nlimits = [{ name = "x", meter = "requests", rate = "1/day",'
        ' algorithm = "calendar" }]\n'
    )
    assert "keeps its algorithm" in bad(two, tmp_path)
    dup = (
        '[plans.a]\nlimits = [{ name = "x", meter = "requests", rate = "1/minute" },'
        ' { name = "x", meter = "tokens", rate = "1/minute" }]\n'
    )
    assert "two limits are named 'x'" in bad(dup, tmp_path)
    with pytest.raises(quota.CatalogError, match="no catalog named 'nope'"):
        quota.Catalog.load("nope")
    odd = tmp_path / "plans.ini"
    odd.write_text("x")
    with pytest.raises(quota.CatalogError, match=r"unknown plan file type '\.ini'"):
        quota.Catalog.load(odd)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(quota.CatalogError, match="table of settings"):
        quota.Catalog.load(listing)


def test_unknown_plan_and_bad_costs() -> None:
    c = quota.Catalog.load("zylo")
    with pytest.raises(quota.UnknownPlanError, match=r"unknown plan 'gold'.*basic"):
        c.plan("gold")
    with pytest.raises(quota.CostError, match="'tokens' must not be negative"):
        c.canonical({"tokens": -1})
    with pytest.raises(quota.CostError, match="must be an integer"):
        c.canonical({"tokens": 1.5})  # type: ignore[dict-item]
    with pytest.raises(quota.CostError, match="must be an integer"):
        c.canonical({"tokens": True})
    with pytest.raises(quota.CostError, match="unknown meter 'token'"):
        c.canonical({"token": 1})
    with pytest.raises(quota.CostError, match="too large"):
        c.canonical({"tokens": 2**60})


def test_token_bucket_bounds_are_checked() -> None:
    ok = {
        "plans": {
            "p": {
                "limits": [
                    {
                        "name": "t",
                        "meter": "tokens",
                        "rate": "100000000/day",
                        "algorithm": "token_bucket",
                    }
                ]
            }
        }
    }
    assert quota.Catalog.load(ok).plans["p"].limits[0].capacity == 100_000_000
    too_big = {
        "plans": {
            "p": {
                "limits": [
                    {
                        "name": "t",
                        "meter": "tokens",
                        "rate": "999999937/day",
                        "algorithm": "token_bucket",
                    }
                ]
            }
        }
    }
    with pytest.raises(quota.CatalogError, match="too large for exact integer"):
        quota.Catalog.load(too_big)
