"""The ``quota`` command, run for real: ``python -m quota ...`` in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import quota
from quota.cli.tables import Row, Section, render

GOOD = """
[meters]
aliases = { google_search = "search", url_context = "search" }

[plans.free]
models = ["basic"]
limits = [
  { name = "rpm", meter = "requests", rate = "10/minute" },
  { name = "rpd", meter = "requests", rate = "7200 per day", algorithm = "calendar" },
]

[plans.paid]
price = "$5"
features = ["search"]
limits = [
  { name = "rpm", meter = "requests", rate = "100/minute" },
  { name = "search", meter = "search", rate = "10/minute", scope = "key" },
  { name = "credits", meter = "credits", algorithm = "balance", grant = 5_000_000 },
]
"""

BAD = {
    "bad_rate": (
        '[plans.free]\nlimits = [{ name = "rpm", meter = "requests",'
        ' rate = "10 per fortnight" }]\n',
        ["plan 'free'", "limit 'rpm'", "bad rate '10 per fortnight'"],
    ),
    "unknown_field": (
        '[plans.free]\nlimits = [{ name = "rpm", meter = "requests", rate = "10/minute",'
        " burts = 5 }]\n",
        ["plan 'free'", "limit 'rpm'", "unknown field 'burts'"],
    ),
    "unknown_plan_field": (
        '[plans.free]\nmodles = ["basic"]\n',
        ["plan 'free'", "field 'modles'", "unknown field"],
    ),
    "alias_as_meter": (
        '[meters]\naliases = { google_search = "search" }\n[plans.free]\n'
        'limits = [{ name = "gs", meter = "google_search", rate = "10/minute" }]\n',
        ["plan 'free'", "limit 'gs'", "meter 'google_search' is an alias of 'search'"],
    ),
    "invalid_toml": (
        "[plans.free\nlimits = \n",
        ["is not valid TOML", "line 1"],
    ),
}


def run(*args: str, columns: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [sys.executable, "-m", "quota", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def row(out: str, request: str) -> list[str]:
    """The cells of the demo row whose request column is ``request``."""
    for line in out.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 8 and cells[1] == request:
            return cells
    raise AssertionError(f"no demo row for {request!r} in:\n{out}")


@pytest.fixture(scope="module")
def demo() -> str:
    proc = run("demo")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def test_demo_rpm_denial_with_exact_retry_after(demo: str) -> None:
    assert row(demo, "chat #10") == [
        "t+9s", "chat #10", "basic", "allowed", "200", "rpm", "rpm 0/10", "-"
    ]  # fmt: skip
    assert row(demo, "chat #11") == [
        "t+10.25s", "chat #11", "basic", "denied", "429", "rpm", "rpm 0/10", "49.75s"
    ]  # fmt: skip
    retried = row(demo, "chat #11, retried")
    assert retried[0] == "t+60s"  # 10.25 + 49.75: admitted exactly when told
    assert retried[3:5] == ["allowed", "200"]


def test_demo_entitlements_are_403(demo: str) -> None:
    assert row(demo, "gpt-5.5 (premium)")[2:] == [
        "basic", "denied", "403", "model", "-", "never"
    ]  # fmt: skip
    assert row(demo, "chat + tools")[3:6] == ["denied", "403", "feature:tools"]


def test_demo_search_tools_share_one_budget(demo: str) -> None:
    assert row(demo, "google_search x5")[6] == "search 5/10"
    assert row(demo, "url_context x5")[6] == "search 0/10"
    for tool in ("google_search", "url_context"):
        assert row(demo, f"{tool} #11")[2:] == [
            "go", "denied", "429", "search", "search 0/10", "50s"
        ]  # fmt: skip


def test_demo_reservation_settles_to_real_usage(demo: str) -> None:
    assert row(demo, "est. 1200+4000 tok")[5:7] == ["tpd", "tpd 506,800/512,000"]
    assert row(demo, "settle to 1200+310")[3:7] == ["settled", "-", "tpd", "tpd 510,490/512,000"]


def test_demo_credits_run_out_then_top_up(demo: str) -> None:
    lines = [re.split(r"\s{2,}", x.strip()) for x in demo.splitlines()]
    credits = [cells for cells in lines if cells[1:2] in (["claude-opus-4.8"], ["top_up $10.00"])]
    assert [(c[3], c[4], c[6]) for c in credits] == [
        ("allowed", "200", "credits $5.50"),
        ("allowed", "200", "credits $1.00"),
        ("denied", "402", "credits $1.00"),
        ("top-up", "-", "credits $11.00"),
        ("allowed", "200", "credits $6.50"),
    ]
    assert "= $4.50" in demo


def test_demo_daily_cap_resets_at_utc_midnight(demo: str) -> None:
    denied = row(demo, "chat, 60,000 tok")
    assert denied[3:7] == ["denied", "429", "tpd", "tpd 50,000/200,000"]
    # 09:01:28Z + 53,912 s = 00:00:00Z the next day.
    assert denied[0] == "t+88s" and denied[7] == "53912s"
    assert row(demo, "same, next UTC day")[0] == "t+54000s"
    assert row(demo, "same, next UTC day")[3:7] == ["allowed", "200", "tpd", "tpd 140,000/200,000"]


def test_demo_enterprise_unlimited_and_summary(demo: str) -> None:
    assert row(demo, "chat x1,000 in 1 s")[2:7] == [
        "enterprise", "allowed", "200", "-", "unlimited"
    ]  # fmt: skip
    assert row(demo, "one 2M-token call")[6] == "unlimited"
    assert "2026-01-15T09:00:00Z" in demo
    assert (
        demo.rstrip().splitlines()[-1] == "1,038 decisions, 8 denied (5 x 429, 2 x 403, 1 x 402)."
    )
    assert len(demo.splitlines()) <= 40


def test_demo_priority_keeps_shared_capacity_for_mega(demo: str) -> None:
    lines = [re.split(r"\s{2,}", x.strip()) for x in demo.splitlines()]
    scene = [
        cells for cells in lines if cells[1:2] in (["gpt-5.5, 1.7M tok"], ["gpt-5.5, 20k tok"])
    ]
    assert [c[2:] for c in scene] == [
        ["mega", "allowed", "200", "upstream", "upstream 300,000/2,000,000", "-"],
        ["go", "reserved", "429", "upstream", "upstream 0/1,600,000", "59s"],  # 85% used
        ["mega", "allowed", "200", "upstream", "upstream 280,000/2,000,000", "-"],
    ]


def test_demo_is_deterministic(demo: str) -> None:
    assert run("demo", "--backend", "memory://").stdout == demo


def test_demo_unknown_backend_is_a_clean_error() -> None:
    proc = run("demo", "--backend", "nosuch://x")
    assert proc.returncode == 2  # bad input
    assert proc.stderr.startswith("quota: error: unknown storage URL 'nosuch://x'")
    assert "Traceback" not in proc.stderr


def test_plans_zylo() -> None:
    proc = run("plans")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for plan in ("basic", "go", "pro", "mega", "enterprise"):
        assert re.search(rf"^{plan}\s", out, re.M), plan
    header = next(line for line in out.splitlines() if line.startswith("plan "))
    assert header.split() == [
        "plan", "price", "models", "features",
        "requests", "tokens", "credits", "search", "code_execution", "web_extract",
    ]  # fmt: skip
    basic = next(line for line in out.splitlines() if line.startswith("basic "))
    assert "10/min sliding, 7,200/day" in basic and "200,000/day" in basic
    enterprise = next(line for line in out.splitlines() if line.startswith("enterprise "))
    assert enterprise.count("unlimited") == 1 and "$400.00 grant" in enterprise
    # the shared upstream budget on premium models: 20% kept for mega and enterprise
    assert "shadow 2,000,000/min sliding (global) for premium (20% kept for" in enterprise
    go = next(line for line in out.splitlines() if line.startswith("go "))
    assert "for premium, 1,600,000 open (20% kept for priority 10+)" in go
    assert "Priority for shared capacity (others 0): mega 10, enterprise 10." in out
    assert "google_search + url_context -> one 'search' budget" in out
    assert re.search(r"claude-opus-4\.8\s+premium\s+\$15\.00/1M tok\s+\$75\.00/1M tok", out)


def test_plans_zyla_and_a_file(tmp_path: Path) -> None:
    proc = run("plans", "zyla")
    assert proc.returncode == 0, proc.stderr
    for plan in ("trial", "basic", "pro"):
        assert re.search(rf"^{plan}\s", proc.stdout, re.M), plan
    assert "50 once, over 7 days" in proc.stdout
    assert "1,000/month from cycle start" in proc.stdout
    path = tmp_path / "plans.toml"
    path.write_text(GOOD)
    proc = run("plans", str(path))
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^free .*not on plan", proc.stdout, re.M)
    assert "$5.00 grant" in proc.stdout and "10/min sliding per key" in proc.stdout


def test_plans_fits_the_terminal_width() -> None:
    proc = run("plans", columns=120)
    assert proc.returncode == 0, proc.stderr
    assert max(len(line) for line in proc.stdout.splitlines()) <= 120
    assert re.search(r"^enterprise\s", proc.stdout, re.M)


def test_check_good_files(tmp_path: Path) -> None:
    path = tmp_path / "plans.toml"
    path.write_text(GOOD)
    proc = run("check", str(path), "zylo")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"ok: {path} (2 plans, 5 limits)",
        "ok: zylo (5 plans, 29 limits; 4 per-model; 4 with a reserve;"
        " priorities: mega 10, enterprise 10)",
    ]


@pytest.mark.parametrize("case", sorted(BAD))
def test_check_bad_file(tmp_path: Path, case: str) -> None:
    text, expected = BAD[case]
    path = tmp_path / f"{case}.toml"
    path.write_text(text)
    proc = run("check", str(path))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("quota: error: ")
    assert "Traceback" not in proc.stderr
    for fragment in expected:
        assert fragment in proc.stderr


def test_check_reports_every_file(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(GOOD)
    bad.write_text(BAD["bad_rate"][0])
    proc = run("check", str(bad), str(good), str(tmp_path / "missing.toml"))
    assert proc.returncode == 1
    assert proc.stdout == f"ok: {good} (2 plans, 5 limits)\n"
    assert proc.stderr.count("quota: error: ") == 2
    assert "missing.toml" in proc.stderr


def test_usage_errors_exit_2() -> None:
    proc = run("frobnicate")
    assert proc.returncode == 2
    assert "invalid choice: 'frobnicate'" in proc.stderr
    proc = run()
    assert proc.returncode == 2
    assert "usage: quota" in proc.stderr and "demo" in proc.stderr
    assert run("check").returncode == 2


def test_version_and_missing_catalog() -> None:
    proc = run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"quota {quota.__version__}"
    proc = run("plans", "nosuch")
    assert proc.returncode == 2
    assert proc.stderr == (
        "quota: error: no catalog named 'nosuch': not a built-in (zyla, zylo) and no such file\n"
    )


def test_render_aligns_and_wraps() -> None:
    rows: list[Row] = [Section("group"), ["basic", 1200, "tools, images, search"], ["go", 7, "-"]]
    text = render(["plan", "calls", "features"], rows)
    assert text.splitlines() == [
        "plan   calls  features",
        "-----  -----  ---------------------",
        "-- group --------------------------",
        "basic  1,200  tools, images, search",
        "go         7  -",
    ]
    narrow = render(["plan", "calls", "features"], rows[1:], width=22).splitlines()
    assert max(len(line) for line in narrow) <= 22
    assert narrow[2:6] == [
        "basic  1,200  tools,",
        "              images,",
        "              search",
        "",
    ]
