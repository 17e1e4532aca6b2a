"""The operator commands through the real ``quota`` console script: ``usage``, ``reset`` and
``top-up`` on memory and on a real Redis whose state a limiter in the test shares (with the
default hashing secret, and with a deployment's own: ``--secret``, ``$QUOTA_SECRET``), with the
exit codes a script relies on (0 ok, 1 limited, 2 bad input, 3 backend unreachable)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from servers import free_port

import quota

ZYLO = quota.Catalog.load("zylo")
SCRIPT = Path(sys.executable).with_name("quota")  # the console script uv installed
MEMORY_NOTE = "memory:// keeps state only inside this process"


def quota_cmd(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``quota``; the caller's ``$QUOTA_SECRET`` is never inherited (``env`` adds to the
    environment)."""
    run_env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "QUOTA_SECRET")}
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=run_env | dict(env or {}),
        check=False,
    )


@pytest.fixture
def redis_url(redis_port: int, request: pytest.FixtureRequest) -> str:
    return f"redis://127.0.0.1:{redis_port}/0?prefix=cli{abs(hash(request.node.name)) % 10**8}"


@pytest.fixture
def shared(redis_url: str) -> Iterator[quota.Limiter]:
    """A limiter of the test on the same Redis the commands act on (server clock); without
    the block cache, whose cached denials would outlive a reset made by another process."""
    with quota.Limiter(ZYLO, redis_url, block_cache=False) as limiter:
        yield limiter


def test_console_script_help_lists_commands_and_exit_codes() -> None:
    proc = quota_cmd("--help")
    assert proc.returncode == 0
    for command in ("usage", "reset", "top-up", "simulate", "serve"):
        assert command in proc.stdout
    assert "exit status:" in proc.stdout and "3  the storage backend failed" in proc.stdout
    sub = quota_cmd("usage", "--help")
    assert sub.returncode == 0 and "--days" in sub.stdout and "exit status:" in sub.stdout


def test_memory_commands_say_state_is_per_process() -> None:
    proc = quota_cmd("usage", "acct_1", "--plan", "basic", "--json")
    assert proc.returncode == 0, proc.stderr
    assert MEMORY_NOTE in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["account"] == "acct_1" and doc["plan"] == "basic" and doc["limited_by"] == []
    assert {s["name"]: s["remaining"] for s in doc["limits"]} == {
        "rpm": 10, "rpd": 7200, "tpd": 200_000
    }  # fmt: skip
    proc = quota_cmd("top-up", "acct_1", "credits", "2500000", "--plan", "go")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "account 'acct_1': credits +$2.50, balance $12.50\n"
    assert MEMORY_NOTE in proc.stderr


def test_usage_reset_and_top_up_act_on_shared_redis_state(
    redis_url: str, shared: quota.Limiter
) -> None:
    who = quota.Principal(account="acct_42", plan="basic", key="sk-42")
    for _ in range(4):
        assert shared.acquire(who, {"requests": 1, "tokens": 1500}).allowed
    proc = quota_cmd("usage", "acct_42", "--plan", "basic", "--backend", redis_url, "--json")
    assert proc.returncode == 0, proc.stderr
    assert MEMORY_NOTE not in proc.stderr
    doc = json.loads(proc.stdout)
    left = {s["name"]: s["remaining"] for s in doc["limits"]}
    assert left == {"rpm": 6, "rpd": 7196, "tpd": 200_000 - 6000}
    history = doc["history"]
    assert len(history) == 30
    today = list(history.values())[-1]
    assert today["requests"] == 4 and today["tokens"] == 6000
    assert sum(day["requests"] for day in history.values()) == 4

    text = quota_cmd("usage", "acct_42", "--plan", "basic", "--backend", redis_url)
    assert text.returncode == 0, text.stderr
    assert "rpm" in text.stdout and "194,000" in text.stdout
    total = next(line for line in text.stdout.splitlines() if line.startswith("total"))
    assert total.split() == ["total", "4", "6,000"]

    # The account hits its minute cap: `usage` answers 1 and names the limit.
    for _ in range(6):
        assert shared.acquire(who, {"requests": 1}).allowed
    assert not shared.acquire(who, {"requests": 1}).allowed
    proc = quota_cmd("usage", "acct_42", "--plan", "basic", "--backend", redis_url)
    assert proc.returncode == 1
    assert "limited: rpm (nothing left)" in proc.stdout

    proc = quota_cmd("reset", "acct_42", "--backend", redis_url)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("account 'acct_42': usage reset")
    assert shared.acquire(who, {"requests": 1}).allowed  # the gateway sees it at once
    assert {s.name: s.remaining for s in shared.peek(who)}["rpm"] == 9

    go = quota.Principal(account="acct_42", plan="go")
    assert shared.acquire(go, {"requests": 1, "credits": 4_000_000}).allowed
    proc = quota_cmd(
        "top-up", "acct_42", "credits", "1_000_000", "--plan", "go", "--backend", redis_url,
        "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "account": "acct_42", "meter": "credits", "added": 1_000_000, "balance": 7_000_000
    }  # fmt: skip
    assert {s.name: s.remaining for s in shared.peek(go)}["credits"] == 7_000_000
    # reset keeps the balance unless asked
    assert quota_cmd("reset", "acct_42", "--backend", redis_url).returncode == 0
    assert {s.name: s.remaining for s in shared.peek(go)}["credits"] == 7_000_000
    proc = quota_cmd("reset", "acct_42", "--backend", redis_url, "--include-balance", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["include_balance"] is True
    assert {s.name: s.remaining for s in shared.peek(go)}["credits"] == 10_000_000  # the grant


def test_per_key_limits_need_the_key(redis_url: str, shared: quota.Limiter) -> None:
    who = quota.Principal(account="acct_k", plan="go", key="sk-k")
    assert shared.acquire(who, {"requests": 1, "search": 3}).allowed
    args = ("usage", "acct_k", "--plan", "go", "--backend", redis_url, "--json")
    without = {s["name"] for s in json.loads(quota_cmd(*args).stdout)["limits"]}
    assert "search" not in without
    doc = json.loads(quota_cmd(*args, "--key", "sk-k").stdout)
    assert {s["name"]: s["remaining"] for s in doc["limits"]}["search"] == 7


SECRET = "a-deployment-secret-0123456789"


def _left(proc: subprocess.CompletedProcess[str]) -> dict[str, int]:
    assert proc.returncode in (0, 1), proc.stderr
    return {s["name"]: s["remaining"] for s in json.loads(proc.stdout)["limits"]}


def test_commands_take_the_gateways_secret(redis_url: str) -> None:
    """Against a store written with a secret, ``--secret`` or ``$QUOTA_SECRET`` make usage,
    reset and top-up act on the account's real state; without either they hash with the
    default secret (as a limiter built without ``secret=``), which names other keys."""
    who = quota.Principal(account="acct_s", plan="basic")
    go = quota.Principal(account="acct_s", plan="go")
    with quota.Limiter(ZYLO, redis_url, secret=SECRET.encode(), block_cache=False) as gateway:
        for _ in range(10):
            assert gateway.acquire(who, {"requests": 1}).allowed
        assert not gateway.acquire(who, {"requests": 1}).allowed  # rpm spent
        usage = ("usage", "acct_s", "--plan", "basic", "--backend", redis_url, "--json")
        assert _left(quota_cmd(*usage))["rpm"] == 10  # the default secret: not the gateway's

        by_flag = quota_cmd(*usage, "--secret", SECRET)
        by_env = quota_cmd(*usage, env={"QUOTA_SECRET": SECRET})
        for proc in (by_flag, by_env):
            assert proc.returncode == 1, proc.stderr
            assert json.loads(proc.stdout)["limited_by"] == ["rpm"]
            assert _left(proc) == {"rpm": 0, "rpd": 7190, "tpd": 200_000}
            assert SECRET not in proc.stdout + proc.stderr

        reset = quota_cmd("reset", "acct_s", "--backend", redis_url, env={"QUOTA_SECRET": SECRET})
        assert reset.returncode == 0, reset.stderr
        assert {s.name: s.remaining for s in gateway.peek(who)}["rpm"] == 10
        assert gateway.acquire(who, {"requests": 1}).allowed

        top_up = quota_cmd(
            "top-up", "acct_s", "credits", "1500000", "--plan", "go", "--backend", redis_url,
            "--secret", SECRET, "--json",
        )  # fmt: skip
        assert top_up.returncode == 0, top_up.stderr
        assert json.loads(top_up.stdout)["balance"] == 11_500_000
        assert {s.name: s.remaining for s in gateway.peek(go)}["credits"] == 11_500_000
        # --secret wins over the environment
        both = quota_cmd(*usage, "--secret", SECRET, env={"QUOTA_SECRET": "x" * 20})
        assert _left(both)["rpm"] == 9


def test_a_short_secret_is_bad_input_and_never_printed() -> None:
    usage = ("usage", "a", "--plan", "basic")
    for proc, source in [
        (quota_cmd(*usage, "--secret", "tiny-secret"), "--secret"),
        (quota_cmd(*usage, env={"QUOTA_SECRET": "tiny-secret"}), "QUOTA_SECRET"),
    ]:
        assert proc.returncode == 2, proc.stderr
        assert f"quota: error: {source} is too short (11 bytes)" in proc.stderr
        assert "tiny-secret" not in proc.stderr and "Traceback" not in proc.stderr


def test_an_overdrawn_balance_shows_negative(redis_url: str, shared: quota.Limiter) -> None:
    """A settle past the balance leaves a debt: ``usage`` shows it signed, in JSON and text,
    and exits 1 (nothing left)."""
    go = quota.Principal(account="acct_debt", plan="go")
    decision = shared.acquire(go, {"requests": 1, "credits": 1_000_000})
    assert decision.allowed
    shared.settle(decision, {"credits": 12_500_000})  # the grant is $10: $2.50 owed
    args = ("usage", "acct_debt", "--plan", "go", "--backend", redis_url)
    proc = quota_cmd(*args, "--json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert _left(proc)["credits"] == -2_500_000
    assert doc["limited_by"] == ["credits"]
    text = quota_cmd(*args)
    assert text.returncode == 1
    row = next(line for line in text.stdout.splitlines() if line.startswith("credits"))
    assert "-$2.50" in row.split()


def test_reset_needs_no_cycle_start() -> None:
    """A reset forgets every window, so a Zyla account resets without ``--cycle-start``; its
    JSON has no limits to show then (they count from the anchor)."""
    proc = quota_cmd("reset", "acct_z", "--catalog", "zyla", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["limits"] is None
    proc = quota_cmd("reset", "acct_z", "--catalog", "zyla", "--plan", "basic", "--json",
                     "--cycle-start", "2026-01-31T10:00:00Z")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [s["name"] for s in json.loads(proc.stdout)["limits"]] == ["monthly"]


BAD_INPUT = [
    (("usage", "a", "--plan", "gold"), "unknown plan 'gold'"),
    (("usage", "a"), "the following arguments are required: --plan"),
    (("usage", "a", "--plan", "basic", "--days", "0"), "must be positive"),
    (("top-up", "a", "credits", "-5", "--plan", "go"), "must be positive"),
    (("top-up", "a", "credits", "lots", "--plan", "go"), "expected an integer"),
    (("top-up", "a", "credits", "5", "--plan", "basic"), "plan 'basic' has no balance"),
    (("top-up", "a", "wishes", "5", "--plan", "go"), "no balance on meter 'wishes'"),
    (("reset", "a", "--backend", "nosuch://x"), "unknown storage URL 'nosuch://x'"),
    (("reset", "a", "--catalog", "nosuch"), "no catalog named 'nosuch'"),
    (("usage", "a", "--plan", "basic", "--cycle-start", "soon"), "invalid time 'soon'"),
    (
        ("usage", "a", "--catalog", "zyla", "--plan", "trial"),
        "plan 'trial', limit 'trial': a one-time allowance starts at the principal's cycle_start",
    ),
    (
        ("usage", "a", "--catalog", "zyla", "--plan", "basic", "--json"),
        "limit 'monthly': a billing-cycle month starts at the principal's cycle_start, and this"
        " principal has none: give --cycle-start",
    ),
    (("reset", "a", "--backend", "redis://u:s3cret@127.0.0.1:1/0?nope=1"), "redis://u:***@"),
]


def test_bad_input_exits_2() -> None:
    with ThreadPoolExecutor(4) as pool:  # one process each, run side by side
        procs = list(pool.map(lambda case: quota_cmd(*case[0]), BAD_INPUT))
    for (args, message), proc in zip(BAD_INPUT, procs, strict=True):
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr, args
        assert "Traceback" not in proc.stderr and "s3cret" not in proc.stderr


def test_unreachable_backend_exits_3() -> None:
    url = f"redis://ops:s3cret@127.0.0.1:{free_port()}/0?socket_connect_timeout=0.5"
    cases = [("usage", "a", "--plan", "basic"), ("reset", "a"),
             ("top-up", "a", "credits", "5", "--plan", "go")]  # fmt: skip
    with ThreadPoolExecutor(3) as pool:
        procs = list(pool.map(lambda args: quota_cmd(*args, "--backend", url), cases))
    for args, proc in zip(cases, procs, strict=True):
        assert proc.returncode == 3, (args, proc.stderr)
        assert proc.stderr.startswith("quota: error: ") and "Traceback" not in proc.stderr
        assert "s3cret" not in proc.stderr + proc.stdout


ORG_PLANS = """
name = "orgs"
groups = ["org"]
[plans.seat]
limits = [
  { name = "rpd", meter = "requests", rate = "100/day", algorithm = "calendar" },
  { name = "org_rpd", meter = "requests", rate = "10/day", algorithm = "calendar", scope = "org" },
  { name = "pool", meter = "credits", algorithm = "balance", grant = 1000, scope = "org" },
]
"""


def test_commands_reach_an_accounts_groups(redis_url: str, tmp_path: Path) -> None:
    """``--group org=acme``: usage shows the org's cap and pool, top-up fills the pool by
    its limit's name, reset leaves what the org shares unless ``--include-groups``."""
    plans = tmp_path / "orgs.toml"
    plans.write_text(ORG_PLANS)
    member = [quota.Principal(account=a, plan="seat", groups={"org": "acme"}) for a in ("a1", "a2")]
    with quota.Limiter(str(plans), redis_url, block_cache=False) as gateway:
        for who in (*member, member[1]):
            assert gateway.acquire(who, {"requests": 1, "credits": 100}).allowed
        store = ("--catalog", str(plans), "--backend", redis_url, "--json")
        who_a1 = ("a1", "--plan", "seat", "--group", "org=acme", *store)
        assert _left(quota_cmd("usage", *who_a1)) == {"rpd": 99, "org_rpd": 7, "pool": 700}
        top = quota_cmd("top-up", "a1", "--plan", "seat", "--group", "org=acme", "pool", "50",
                        *store[:4])  # fmt: skip
        assert top.returncode == 0, top.stderr
        assert {s.name: s.remaining for s in gateway.peek(member[1])}["pool"] == 750
        assert _left(quota_cmd("reset", *who_a1))["org_rpd"] == 7  # the org's count stays
        after = _left(quota_cmd("reset", *who_a1, "--include-groups"))
        assert after == {"rpd": 100, "org_rpd": 10, "pool": 750}  # the pool: balances kept
        assert {s.name: s.remaining for s in gateway.peek(member[1])}["rpd"] == 98
    bad = quota_cmd("usage", "a1", "--plan", "seat", "--group", "acme", *store)
    assert bad.returncode == 2 and "KIND=NAME" in bad.stderr
