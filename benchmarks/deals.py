"""What the deal-shaped limits cost: the Zylo basic decision beside the same decision with an
organisation level and a per-model limit (issue 15), quota alone (no peer decides either).

The ``deals`` plan is the bench ``basic`` plan plus a daily token cap per org (``scope =
"org"``, ten orgs over the hundred accounts) and a per-minute token cap on ``opus-*`` models;
every request names ``opus-4`` so both apply: six limits over two slots, one engine call on
one server. The ``basic`` row runs the same requests without the model (so without the
per-model limit) and without groups: what a plan without the new fields pays.
"""

from __future__ import annotations

import itertools
from typing import Any

import quota

from .contenders import Contender, verdict
from .shapes import ACCOUNTS, TOKENS, ZYLO, accounts, catalog_dict
from .throughput import BACKENDS, Env, _sync_run, best_of
from .timing import Decide, Result

ORGS = 10
MODEL = "opus-4"
BASIC = "quota, Zylo basic"  # the reference row


def catalog() -> quota.Catalog:
    data: dict[str, Any] = catalog_dict(ZYLO)
    limits = list(data["plans"]["basic"]["limits"])
    limits.append(
        {"name": "org_tpd", "meter": "tokens", "rate": "100000000000/day", "scope": "org",
         "algorithm": "calendar"}
    )  # fmt: skip
    limits.append(
        {"name": "opus_tpm", "meter": "tokens", "rate": "1000000000/minute", "models": ["opus-*"]}
    )
    data["plans"]["deals"] = {"limits": limits}
    data["groups"] = ["org"]
    return quota.Catalog.load(data)


def _contender(url: str, plan: str) -> Contender:
    deals = plan == "deals"
    cost = dict(ZYLO.cost)

    def make() -> tuple[Decide, Any]:
        limiter = quota.Limiter(catalog(), url)
        who = [
            quota.Principal(
                account=a, plan=plan, key=k, groups={"org": f"org-{i % ORGS}"} if deals else {}
            )
            for i, (a, k) in enumerate(accounts(ACCOUNTS))
        ]
        cycle = itertools.cycle(who)
        model = MODEL if deals else None
        acquire = limiter.acquire

        def decide() -> bool:
            return verdict(acquire(next(cycle), cost, model=model))

        return decide, limiter.close

    if deals:
        note = f"acquire(): 4 limits + org daily cap + per-model cap, {TOKENS} tokens, one call"
        return Contender("quota, deals (org + model)", note, make)
    return Contender(BASIC, "acquire(): the 4 limits of scenario 2", make)


def run(env: Env) -> dict[str, list[Result]]:
    """Both plans on each backend, interleaved in each round."""
    out = {}
    for backend in BACKENDS:
        url = env.url(backend)
        pair = [_contender(url, "basic"), _contender(url, "deals")]
        out[backend] = best_of(env, pair, lambda c: _sync_run(env, c), backend == "redis")
    return out
