"""The operator commands through the real ``quota`` console script: ``usage``, ``reset`` and
``top-up`` on memory and on a real Redis whose state a limiter in the test shares, with the exit
codes a script relies on (0 ok, 1 limited, 2 bad input, 3 backend unreachable)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from servers import free_port

import quota

ZYLO = quota.Catalog.load("zylo")
SCRIPT = Path(sys.executable).with_name("quota")  # the console script uv installed
MEMORY_NOTE = "memory:// keeps state only inside this process"


def quota_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env=env, check=False
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
]


def test_bad_input_exits_2() -> None:
    with ThreadPoolExecutor(4) as pool:  # one process each, run side by side
        procs = list(pool.map(lambda case: quota_cmd(*case[0]), BAD_INPUT))
    for (args, message), proc in zip(BAD_INPUT, procs, strict=True):
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr, args
        assert "Traceback" not in proc.stderr


def test_unreachable_backend_exits_3() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=0.5"
    cases = [("usage", "a", "--plan", "basic"), ("reset", "a"),
             ("top-up", "a", "credits", "5", "--plan", "go")]  # fmt: skip
    with ThreadPoolExecutor(3) as pool:
        procs = list(pool.map(lambda args: quota_cmd(*args, "--backend", url), cases))
    for args, proc in zip(cases, procs, strict=True):
        assert proc.returncode == 3, (args, proc.stderr)
        assert proc.stderr.startswith("quota: error: ") and "Traceback" not in proc.stderr
