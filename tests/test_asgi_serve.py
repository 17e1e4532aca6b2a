"""``quota serve``: the keys file, the demo keys, the missing-uvicorn message, and the real
command in a subprocess answering curl-style requests and the OpenAI SDK."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest
from http_servers import AppSlot, quota_serve, uvicorn_server, wait_until_listening

import quota
from quota.cli import main
from quota.cli.serve import Gateway, banner, demo_keys, hashing_secret, load_keys

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


# -- the gateway of `quota serve`: views, methods, X-Upstream-Status, newer endpoints -------

ZYLO = quota.Catalog.load("zylo")


@pytest.fixture
def zylo_gateway() -> Iterator[tuple[str, quota.AsyncLimiter]]:
    limiter = quota.AsyncLimiter(ZYLO)
    slot = AppSlot()
    slot.app = Gateway(limiter, demo_keys(ZYLO, dt.datetime.now(dt.timezone.utc)))
    with uvicorn_server(slot) as url:
        yield url, limiter


def remaining(limiter: quota.AsyncLimiter, key: str) -> dict[str, int]:
    who = quota.Principal(account=f"demo-{key[3:]}", plan=key[3:], key=key)
    states = asyncio.run(limiter.peek(who))
    return {s.name: s.remaining for s in states}


def test_the_gateway_answers_stats_and_validate_itself(
    zylo_gateway: tuple[str, quota.AsyncLimiter],
) -> None:
    url, _ = zylo_gateway
    auth = {"Authorization": "Bearer sk-basic"}
    stats = httpx.get(f"{url}/stats", headers=auth).json()
    assert stats["object"] == "stats" and "requests_served" not in stats  # not the upstream's
    assert {limit["name"] for limit in stats["limits"]} >= {"rpm", "rpd", "tpd"}
    valid = httpx.get(f"{url}/v1/validate", headers=auth).json()
    assert valid["valid"] is True and valid["plan"]["name"] == "basic"
    assert httpx.get(f"{url}/stats").status_code == 401
    assert httpx.get(f"{url}/validate").json()["valid"] is False


def test_the_gateway_refuses_other_methods_and_a_bad_upstream_status(
    zylo_gateway: tuple[str, quota.AsyncLimiter],
) -> None:
    url, limiter = zylo_gateway
    auth = {"Authorization": "Bearer sk-basic"}
    body = {"model": "llama-3.1-8b", "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.put(f"{url}/v1/chat/completions", headers=auth, json=body)
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = httpx.post(f"{url}/v1/models", headers=auth, json=body)
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    for value in ("abc", "200", "1000"):
        r = httpx.post(
            f"{url}/v1/chat/completions", headers={**auth, "X-Upstream-Status": value}, json=body
        )
        assert r.status_code == 400, value
        assert r.json()["error"]["code"] == "invalid_upstream_status"
    r = httpx.post(f"{url}/v1/chat/completions", headers=auth, json=body)
    assert r.status_code == 200 and r.headers["x-ratelimit-remaining-requests"] == "6"
    assert remaining(limiter, "sk-basic")["rpm"] == 6  # 405s uncharged; Zylo counts failures


def test_responses_and_embeddings_through_the_gateway(
    zylo_gateway: tuple[str, quota.AsyncLimiter],
) -> None:
    url, limiter = zylo_gateway
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-go", max_retries=0)
    tpd = remaining(limiter, "sk-go")["tpd"]
    response = client.responses.create(model="gpt-5.5", input="hello", max_output_tokens=64)
    assert response.output_text.endswith("said: hello") and response.usage is not None
    tpd -= response.usage.total_tokens
    assert remaining(limiter, "sk-go")["tpd"] == tpd  # settled to the usage
    events = list(client.responses.create(model="gpt-5.5", input="again", stream=True))
    assert events[-1].type == "response.completed"
    tpd -= events[-1].response.usage.total_tokens
    assert remaining(limiter, "sk-go")["tpd"] == tpd
    vectors = client.embeddings.create(model="llama-3.1-8b", input=["a", "b"])
    assert len(vectors.data) == 2 and vectors.usage.total_tokens > 0
    tpd -= vectors.usage.total_tokens
    assert remaining(limiter, "sk-go")["tpd"] == tpd
    with pytest.raises(openai.PermissionDeniedError):  # basic: no premium model here either
        openai.OpenAI(base_url=f"{url}/v1", api_key="sk-basic", max_retries=0).responses.create(
            model="gpt-5.5", input="hi"
        )


# -- `quota serve` and the hashing secret ---------------------------------------------------

SECRET = "a-test-secret-of-32-bytes-or-so!"


@contextmanager
def serve_child(secret: str | None, *args: str) -> Iterator[tuple[str, dict[str, str]]]:
    """``quota serve`` in a child process with (or without) ``$QUOTA_SECRET``; yields its URL
    and, once the block ends, its ``stdout`` and ``stderr`` apart."""
    from servers import free_port

    env = {k: v for k, v in os.environ.items() if k != "QUOTA_SECRET"}
    if secret is not None:
        env["QUOTA_SECRET"] = secret
    port = free_port()
    command = [sys.executable, "-m", "quota", "serve", "--port", str(port), *args]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    output: dict[str, str] = {}
    try:
        wait_until_listening(proc, port)
        yield f"http://127.0.0.1:{port}", output
    finally:
        proc.terminate()
        output["stdout"], output["stderr"] = proc.communicate(timeout=10)


@pytest.mark.parametrize("secret", [SECRET, None], ids=["QUOTA_SECRET", "random"])
def test_quota_serve_hashes_with_quota_secret_else_a_random_one(
    request: pytest.FixtureRequest, secret: str | None
) -> None:
    store = f"redis://127.0.0.1:{request.getfixturevalue('redis_port')}/0?prefix=s{uuid.uuid4().hex[:8]}"
    with serve_child(secret, "--backend", store) as (url, output):
        r = httpx.post(
            f"{url}/v1/chat/completions",
            headers={"Authorization": "Bearer sk-basic"},
            json={"model": "llama-3.1-8b", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining-requests"] == "9"
        stats = httpx.get(f"{url}/stats", headers={"Authorization": "Bearer sk-basic"}).json()
        assert stats["object"] == "stats"  # the middleware's view is on
    said = output["stderr"]
    assert ("hashing secret from $QUOTA_SECRET" in said) == (secret is not None)
    assert ("random hashing secret for this run" in said) == (secret is None)
    assert "hashing secret" not in output["stdout"] and SECRET not in said + output["stdout"]
    who = quota.Principal(account="demo-basic", plan="basic", key="sk-basic")
    used = quota.Limiter(ZYLO, store, secret=SECRET.encode())
    default = quota.Limiter(ZYLO, store)
    try:  # the state is named with $QUOTA_SECRET, or with nothing another process knows
        rpm = {s.name: s.remaining for s in used.peek(who)}["rpm"]
        assert rpm == (9 if secret is not None else 10)
        assert {s.name: s.remaining for s in default.peek(who)}["rpm"] == 10
    finally:
        used.close()
        default.close()


def test_a_short_quota_secret_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QUOTA_SECRET", "tiny-s3cr")
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "QUOTA_SECRET is too short" in err and "tiny-s3cr" not in err


def test_hashing_secret_is_random_per_run_without_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("QUOTA_SECRET", raising=False)
    (one, said), (two, _) = hashing_secret(), hashing_secret()
    assert len(one) == 32 and one != two and "is not set" in said
    monkeypatch.setenv("QUOTA_SECRET", SECRET)
    assert hashing_secret() == (SECRET.encode(), "quota serve: hashing secret from $QUOTA_SECRET")
