"""The admin API and dashboard (``quota.admin``) mounted at ``/admin`` beside a gateway, in one
pure ASGI app: no framework. The gateway resolves keys through the admin app's override store,
so a deal set over the admin API applies from the account's next request.

    uv run python examples/admin_app.py                                 # a scripted operator
    QUOTA_ADMIN_TOKEN=my-admin-token-0123456 \\
        uv run uvicorn --app-dir examples admin_app:app --port 8000     # serve it, then open
    # http://127.0.0.1:8000/admin/?token=my-admin-token-0123456
"""

from __future__ import annotations

import asyncio
import json
import os

import httpx

import quota
import quota.admin
from quota.asgi.types import Receive, Scope, Send

TOKEN = os.environ.get("QUOTA_ADMIN_TOKEN", "example-admin-token-0123")
limiter = quota.AsyncLimiter("zylo", "memory://")

# Your account records: by account id for the admin app, by API key for the gateway.
ALICE = quota.Principal(account="acct_alice", plan="go", key="sk-alice")
ACCOUNTS = {ALICE.account: ALICE}
KEYS = {ALICE.key: ALICE}


async def upstream(scope: Scope, receive: Receive, send: Send) -> None:
    """A stand-in LLM: every call answers 10 completion tokens."""
    while (await receive()).get("more_body"):
        pass
    body = json.dumps({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 10}})
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body.encode()})


overrides = quota.admin.Overrides()
gateway = quota.QuotaMiddleware(upstream, limiter=limiter, resolve=overrides.resolver(KEYS.get))
overrides.subscribe(lambda account: gateway.keys.invalidate())  # a new deal applies at once
admin = quota.admin.app(limiter, token=TOKEN, resolve=ACCOUNTS, overrides=overrides)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """``/admin/...`` to the admin app (mounted: ``root_path`` says where), the rest to the
    gateway."""
    path = scope.get("path", "")
    if path == "/admin" or path.startswith("/admin/"):
        await admin({**scope, "root_path": scope.get("root_path", "") + "/admin"}, receive, send)
    else:
        await gateway(scope, receive, send)


async def main() -> None:
    chat = {"model": "llama-3.1-8b", "messages": [{"role": "user", "content": "hi"}]}
    alice = {"Authorization": "Bearer sk-alice"}
    ops = {"Authorization": f"Bearer {TOKEN}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        for _ in range(3):
            await c.post("/v1/chat/completions", json=chat, headers=alice)
        view = (await c.get("/admin/api/accounts/acct_alice", headers=ops)).json()
        rpd = next(lim for lim in view["limits"] if lim["name"] == "rpd")
        print(f"rpd: {rpd['used']} used, {rpd['remaining']:,} left")
        r = await c.post(
            "/admin/api/accounts/acct_alice/top-up",
            json={"meter": "credits", "amount": 5_000_000},
            headers=ops,
        )
        print(f"credits after a $5 top-up: {r.json()['balance']:,}")
        bad = await c.put(
            "/admin/api/accounts/acct_alice/overrides/rpd",
            json={"value": "4/fortnight"},
            headers=ops,
        )
        print(f"a bad deal: {bad.status_code} {bad.json()['error']['message'].splitlines()[1]}")
        deal = await c.put(
            "/admin/api/accounts/acct_alice/overrides/rpd", json={"value": "4/day"}, headers=ops
        )
        print(f"deal: {deal.json()['overrides']}")
        statuses = [
            (await c.post("/v1/chat/completions", json=chat, headers=alice)).status_code
            for _ in range(2)
        ]
        print(f"with rpd 4/day, two more calls: {statuses}")
        csv = await c.get(
            "/admin/api/accounts/acct_alice/usage", params={"days": 2, "format": "csv"}, headers=ops
        )
        print(csv.text.strip().splitlines()[-1])  # today: requests, tokens, ...
        none = await c.get("/admin/api/accounts/acct_alice")
        print(f"without the token: {none.status_code}")
    await limiter.close()


if __name__ == "__main__":
    asyncio.run(main())
