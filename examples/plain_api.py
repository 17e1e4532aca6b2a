"""The plain API: one all-or-nothing decision per request, settled to the real usage.

uv run python examples/plain_api.py
"""

from __future__ import annotations

import quota

catalog = quota.Catalog.load("zylo")
now = 1_767_225_600.0  # 2026-01-01T00:00:00Z; a clock you move makes the run repeatable
limiter = quota.Limiter(catalog, "memory://", clock=lambda: now)
who = quota.Principal(account="acct_42", plan="basic", key="sk-demo")

# The basic plan allows 10 requests a minute: the 11th is denied with an exact Retry-After.
for i in range(1, 12):
    d = limiter.acquire(who, {"requests": 1, "tokens": 1500})  # prompt + max_tokens estimate
    if d.allowed:
        limiter.settle(d, {"tokens": 800})  # what the response's usage really said
        print(f"request {i}: allowed, {d.state('rpm').remaining} left this minute")
    else:
        print(f"request {i}: {d.status} denied by {d.denied_by}, retry after {d.retry_after}s")
        print(f"  headers: {d.headers()['RateLimit']}")

# Premium models are not on the basic plan: 403 before anything is charged.
d = limiter.acquire(who, {"requests": 1}, model="gpt-5.5")
print(f"gpt-5.5 on basic: {d.status} {d.error_body()}")

now += d.retry_after or 60  # a minute later the window has slid past the first requests
state = {s.name: s.remaining for s in limiter.peek(who)}
print(f"after a minute: rpm {state['rpm']}, tokens left today {state['tpd']}")
