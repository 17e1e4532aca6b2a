"""``quota serve``: the keys file, the demo keys, the missing-uvicorn message, and the real
command in a subprocess answering curl-style requests and the OpenAI SDK."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import httpx
import openai
import pytest
from http_servers import AppSlot, quota_serve, uvicorn_server

import quota
from quota.asgi.serve import Gateway, banner, demo_keys, load_keys
from quota.cli import main

ZYLA = quota.Catalog.load("zyla")


def test_keys_file_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "keys.toml"
    toml.write_text(
        '[keys."sk-alice"]\naccount = "acct_alice"\nplan = "basic"\n'
        "cycle_start = 2026-01-31T10:00:00Z\n"
        '[keys."sk-bob"]\naccount = "acct_bob"\nplan = "trial"\ncycle_start = 2026-02-01\n'
    )
    keys = load_keys(toml, ZYLA)
    assert keys["sk-alice"].cycle_start == dt.datetime(2026, 1, 31, 10, tzinfo=dt.timezone.utc)
    assert keys["sk-bob"].cycle_start == dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)
    assert keys["sk-alice"].key == "sk-alice"
    js = tmp_path / "keys.json"
    js.write_text(
        json.dumps(
            {"sk-carol": {"account": "c", "plan": "pro", "cycle_start": "2026-03-01T00:00:00Z"}}
        )
    )
    assert load_keys(js, ZYLA)["sk-carol"].plan == "pro"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{", "keys file"),
        ("[]", "expected a table"),
        ('{"sk-a": {"account": "a", "plan": "gold"}}', "unknown plan 'gold'"),
        ('{"sk-a": {"account": "a"}}', "plan"),
        ('{"sk-a": {"account": "a", "plan": "basic", "extra": 1}}', "extra"),
        ('{"sk a": {"account": "a", "plan": "basic"}}', "visible ASCII"),
        ('{"sk-a": "basic"}', "expected a table"),
    ],
)
def test_bad_keys_files(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(text)
    with pytest.raises(quota.ConfigError, match=match):
        load_keys(path, ZYLA)


def test_a_bad_keys_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keys.json"
    path.write_text('{"sk-a": {"account": "a", "plan": "gold"}}')
    assert main(["serve", "--keys", str(path)]) == 2
    assert "unknown plan 'gold'" in capsys.readouterr().err
    assert main(["serve", "--catalog", str(tmp_path / "none.toml")]) == 2


def test_serve_without_uvicorn_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the extra were not installed
    assert main(["serve"]) == 2
    assert "pip install 'quota[server]'" in capsys.readouterr().err


def test_demo_keys_and_banner() -> None:
    now = dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)
    keys = demo_keys(ZYLA, now)
    assert sorted(keys) == ["sk-basic", "sk-pro", "sk-trial"]
    assert all(p.cycle_start == now and p.account == f"demo-{p.plan}" for p in keys.values())
    text = banner(ZYLA, "memory://", keys, "http://127.0.0.1:8000", demo=True)
    assert "sk-trial" in text and "Bearer sk-trial" in text and "curl http://127.0.0.1:8000" in text
    assert "sk-basic" not in banner(ZYLA, "memory://", keys, "http://h:1", demo=False)


def test_the_gateway_app_with_demo_keys() -> None:
    limiter = quota.AsyncLimiter(ZYLA)
    slot = AppSlot()
    slot.app = Gateway(limiter, demo_keys(ZYLA, dt.datetime.now(dt.timezone.utc)))
    with uvicorn_server(slot) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-trial", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="any", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.headers["x-zyla-api-calls-monthly-remaining"] == "49"
        assert "You said: hi" in raw.parse().choices[0].message.content


def test_quota_serve_runs(tmp_path: Path) -> None:
    with quota_serve() as child:
        url = child.url
        r = httpx.post(
            f"{url}/v1/chat/completions",
            headers={"Authorization": "Bearer sk-basic", "Content-Type": "application/json"},
            json={"model": "llama-3.1-8b", "messages": [{"role": "user", "content": "hello"}]},
        )
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining-requests"] == "9"
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-go", max_retries=0)
        stream = client.chat.completions.create(
            model="gpt-5.5", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert "stand-in" in "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        with pytest.raises(openai.PermissionDeniedError):
            openai.OpenAI(
                base_url=f"{url}/v1", api_key="sk-basic", max_retries=0
            ).chat.completions.create(model="gpt-5.5", messages=[{"role": "user", "content": "hi"}])
    out, port = child.output, child.port
    assert "sk-basic" in out and "sk-enterprise" in out and f"127.0.0.1:{port}" in out
