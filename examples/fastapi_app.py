"""FastAPI behind ``quota.QuotaMiddleware``: an OpenAI-style endpoint with per-plan limits,
usage settled from the response, and the ready-made ``GET /stats`` view.

    uv run python examples/fastapi_app.py                           # a scripted client
    uv run uvicorn --app-dir examples fastapi_app:app --port 8000   # serve it
"""

from __future__ import annotations

from fastapi import FastAPI

import quota

catalog = quota.Catalog.load("zylo")
limiter = quota.AsyncLimiter(catalog, "memory://")

KEYS = {  # your key store; keys may rotate, budgets stay with the account
    "sk-alice": quota.Principal(account="acct_alice", plan="basic"),
    "sk-bob": quota.Principal(account="acct_bob", plan="go"),
}


async def lookup_key(key: str) -> quota.Principal | None:
    return KEYS.get(key)


app = FastAPI()
app.add_middleware(quota.QuotaMiddleware, limiter=limiter, resolve=lookup_key, views=True)


@app.post("/v1/chat/completions")
async def chat(body: dict[str, object]) -> dict[str, object]:
    # Your upstream call goes here; the middleware reads "usage" to settle the reservation.
    return {
        "object": "chat.completion",
        "model": body.get("model"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42},
    }


if __name__ == "__main__":
    from fastapi.testclient import TestClient

    chat_body = {"model": "llama-3.1-8b", "messages": [{"role": "user", "content": "hi"}]}
    with TestClient(app) as client:
        for i in range(1, 12):
            r = client.post(
                "/v1/chat/completions", json=chat_body, headers={"Authorization": "Bearer sk-alice"}
            )
            left = r.headers["x-ratelimit-remaining-requests"]
            print(f"alice #{i}: {r.status_code} remaining {left}")
        print(f"  {r.json()['error']['message']} (Retry-After: {r.headers['retry-after']})")
        r = client.post("/v1/chat/completions", json={**chat_body, "model": "gpt-5.5"},
                        headers={"Authorization": "Bearer sk-alice"})  # fmt: skip
        print(f"alice gpt-5.5: {r.status_code} {r.json()['error']['code']}")
        r = client.post("/v1/chat/completions", json=chat_body)
        print(f"no key: {r.status_code} {r.json()['error']['code']}")
        stats = client.get("/stats", headers={"Authorization": "Bearer sk-alice"}).json()
        print(f"alice /stats: {sorted(stats)}")
