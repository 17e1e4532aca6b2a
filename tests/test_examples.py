"""Every file in examples/ runs, as a user would run it, and prints what it promises. The Redis
example gets a real redis-server on a free port through ``QUOTA_REDIS_URL``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def test_every_example_is_tested() -> None:
    tested = {
        "plain_api.py",
        "fastapi_app.py",
        "starlette_app.py",
        "async_redis.py",
        "webhooks.py",
        "admin_app.py",
        "observability.py",
    }
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_plain_api() -> None:
    out = run_example("plain_api.py").splitlines()
    assert out[0] == "request 1: allowed, 9 left this minute"
    assert out[9] == "request 10: allowed, 0 left this minute"
    assert out[10] == "request 11: 429 denied by rpm, retry after 60.0s"
    assert "gpt-5.5 on basic: 403" in out[12] and "model_not_allowed" in out[12]
    assert out[-1] == "after a minute: rpm 10, tokens left today 192000"  # 10 x 800 settled


def test_fastapi_app() -> None:
    out = run_example("fastapi_app.py")
    assert "alice #10: 200 remaining 0" in out and "alice #11: 429 remaining 0" in out
    assert "limit 'rpm' reached" in out and "(Retry-After: 60)" in out
    assert "alice gpt-5.5: 403 model_not_allowed" in out
    assert "no key: 401 missing_api_key" in out
    assert "alice /stats: [" in out and "'usage'" in out


def test_starlette_app_with_metrics() -> None:
    out = run_example("starlette_app.py").splitlines()
    assert out[:3] == [
        "200 {'ok': True, 'remaining': 49} 49",
        "200 {'ok': True, 'remaining': 48} 48",
        "200 {'ok': True, 'remaining': 47} 47",
    ]
    assert out[3] == "401"
    assert out[4] == 'quota_decisions_total{limit="none",outcome="allowed",plan="trial"} 3.0'


def test_async_redis(redis_port: int) -> None:
    out = run_example("async_redis.py", QUOTA_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0")
    lines = out.splitlines()
    assert lines[0] == "50 concurrent requests: 10 admitted, 40 denied by rpm"
    assert lines[1].startswith("next slot in ") and 0 < float(lines[1].split()[3][:-1]) <= 60
    assert "'requests': 10" in lines[2] and "'tokens': 1000" in lines[2]


def test_webhooks() -> None:
    out = run_example("webhooks.py").splitlines()
    assert out[7] == "request 8: allowed, alerts: rpd used 80"
    assert out[9] == "request 10: allowed, alerts: rpd used 100"
    assert "webhook: acct_42 credits balance_below 1000" in out
    assert out[-1] == "sender: {'queued': 3, 'sent': 3, 'retried': 0, 'failed': 0, 'dropped': 0}"


def test_observability() -> None:
    out = run_example("observability.py").splitlines()
    assert out[0] == "sk-basic may call: llama-3.1-8b"
    assert (
        out[1] == "sk-go may call: claude-opus-4.8, gpt-5.5, gemini-3.1-pro-preview, llama-3.1-8b"
    )
    assert out[2] == "sk-basic, 11 chats: 10 x 200, 1 x 429"
    assert out[3:5] == [
        "quota.decisions allowed by none: 10",
        "quota.decisions denied by rpm: 1",
    ]
    assert out[-1] == "spans: quota.backend.acquire, quota.decision"
