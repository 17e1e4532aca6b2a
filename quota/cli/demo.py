"""``quota demo``: a scripted tour of the built-in Zylo catalog through the plain API.

Every decision comes from a real ``quota.Limiter`` over the chosen storage, driven by a fake
clock that starts at 2026-01-15T09:00:00Z and only moves when the script says so: the output is
the same on every run.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping

from ..backends.urls import redact
from ..catalog import Catalog, Principal
from ..decision import Decision
from ..errors import QuotaError
from ..keys import GLOBAL_SLOT
from ..limiter import Limiter
from ..states import LimitState, binding
from .exits import EXIT_OK
from .tables import Row, Section, dollars, render

START = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.timezone.utc)
HEADERS = ("time", "request", "plan", "decision", "status", "limit", "remaining", "retry-after")
ALIGN = "rllllllr"
#: One chat request of the scenes: a request and 500 tokens.
CHAT = {"requests": 1, "tokens": 500}


class FakeClock:
    """A clock that stands still until advanced; whole milliseconds, so no float drift."""

    def __init__(self, start: dt.datetime) -> None:
        self.start_ms = round(start.timestamp() * 1000)
        self.ms = self.start_ms

    def __call__(self) -> float:
        return self.ms / 1000

    def advance(self, seconds: float) -> None:
        self.ms += round(seconds * 1000)

    @property
    def elapsed(self) -> float:
        return (self.ms - self.start_ms) / 1000


def seconds(value: float) -> str:
    """Seconds to the millisecond, trailing zeros dropped: 49.75 -> "49.75s"."""
    return f"{value:.3f}".rstrip("0").rstrip(".") + "s"


def remaining(state: LimitState) -> str:
    """``rpm 0/10``; a balance shows what is left in it (dollars for credits)."""
    if state.algorithm == "balance":
        amount = dollars(state.remaining) if state.meter == "credits" else f"{state.remaining:,}"
        return f"{state.name} {amount}"
    return f"{state.name} {state.remaining:,}/{state.limit:,}"


class Demo:
    """Plays the script against a limiter and collects one table row per step."""

    def __init__(self, backend: str = "memory://") -> None:
        self.clock = FakeClock(START)
        self.catalog = Catalog.load("zylo")
        try:
            self.limiter = Limiter(self.catalog, backend, clock=self.clock)
        except QuotaError:
            raise
        except ValueError as exc:  # an unknown storage URL
            raise QuotaError(str(exc)) from None
        self.backend = backend
        self.rows: list[Row] = []
        self.statuses: Counter[int] = Counter()
        self.decisions = 0

    def who(self, account: str, plan: str) -> Principal:
        """A demo account; its stored usage is forgotten first (persistent backends)."""
        principal = Principal(account=f"demo-{account}", plan=plan, key=f"sk-demo-{account}")
        self.limiter.reset(principal, include_balance=True)
        return principal

    def call(
        self,
        who: Principal,
        what: str,
        cost: Mapping[str, int],
        *,
        model: str | None = None,
        features: Iterable[str] = (),
        show: str | None = None,
        times: int = 1,
        every: float = 1.0,
    ) -> Decision:
        """``times`` acquires ``every`` seconds apart; one row for the last decision."""
        decision = self._acquire(who, cost, model, features)
        for _ in range(times - 1):
            self.clock.advance(every)
            decision = self._acquire(who, cost, model, features)
        states = decision.states
        if decision.denied_by is not None:
            shown = [s for s in states if s.name == decision.denied_by]
        else:
            shown = [s for s in states if s.name == show] or [s for s in [binding(states)] if s]
        limit = decision.denied_by or (shown[0].name if shown else "-")
        left = remaining(shown[0]) if shown else ("unlimited" if decision.allowed else "-")
        if decision.allowed:
            retry = "-"
        else:
            retry = "never" if decision.retry_after is None else seconds(decision.retry_after)
        verdict = "allowed" if decision.allowed else "denied"
        if decision.code == "capacity_reserved":  # the open share is used; the rest is kept
            verdict = "reserved"
        self._row(what, who, verdict, str(decision.status), limit, left, retry)
        return decision

    def _acquire(
        self, who: Principal, cost: Mapping[str, int], model: str | None, features: Iterable[str]
    ) -> Decision:
        decision = self.limiter.acquire(who, cost, model=model, features=set(features))
        self.decisions += 1
        if not decision.allowed:
            self.statuses[decision.status] += 1
        return decision

    def note(self, who: Principal, what: str, verdict: str, limit: str) -> None:
        """A row for a settle or top-up: the limit's state as ``peek`` sees it now."""
        state = next(s for s in self.limiter.peek(who) if s.name == limit)
        self._row(what, who, verdict, "-", limit, remaining(state), "-")

    def _row(self, what: str, who: Principal, *cells: str) -> None:
        self.rows.append((f"t+{seconds(self.clock.elapsed)}", what, who.plan, *cells))

    def wait(self, secs: float) -> None:
        self.clock.advance(secs)

    # -- the script --------------------------------------------------------------------------

    def play(self) -> None:
        """Every scene, in order, on one clock; a fresh account for each but the second."""
        alice = self.who("alice", "basic")
        self.sliding_window(alice)
        self.entitlements(alice)
        self.shared_budget(self.who("bob", "go"))
        self.token_settlement(self.who("carol", "go"))
        self.prepaid_credits(self.who("dave", "go"))
        self.unlimited(self.who("erin", "enterprise"))
        self.daily_tokens(self.who("frank", "basic"))
        self.priority(self.who("grace", "mega"), self.who("heidi", "go"))

    def sliding_window(self, alice: Principal) -> None:
        """alice on basic: ten requests a minute, the eleventh denied until a slot frees."""
        self.rows.append(Section("basic: 10 requests per minute, sliding window (alice)"))
        self.call(alice, "chat #1", CHAT)
        self.wait(1)
        self.call(alice, "chat #2-#9 (1/s)", CHAT, times=8)
        self.wait(1)
        self.call(alice, "chat #10", CHAT)
        self.wait(1.25)
        denied = self.call(alice, "chat #11", CHAT)
        self.wait(denied.retry_after or 0)
        self.call(alice, "chat #11, retried", CHAT)

    def entitlements(self, alice: Principal) -> None:
        """alice again: a premium model and a feature her plan lacks, refused before charging."""
        self.rows.append(Section("entitlements: checked before anything is charged (alice)"))
        self.wait(1)
        self.call(alice, "gpt-5.5 (premium)", CHAT, model="gpt-5.5")
        self.call(alice, "chat + tools", CHAT, features={"tools"})

    def shared_budget(self, bob: Principal) -> None:
        """bob on go: two tools that are aliases of one meter draw on one budget."""
        self.rows.append(Section("go: google_search + url_context share ONE 10/min budget (bob)"))
        search = {"requests": 1, "google_search": 1}
        context = {"requests": 1, "url_context": 1}
        self.wait(1)
        self.call(bob, "google_search x5", search, features={"google_search"}, times=5)
        self.wait(1)
        self.call(bob, "url_context x5", context, features={"url_context"}, times=5)
        self.wait(1)
        self.call(bob, "url_context #11", context, features={"url_context"})
        self.call(bob, "google_search #11", search, features={"google_search"})

    def token_settlement(self, carol: Principal) -> None:
        """carol on go: a reservation of prompt + max_tokens, settled to the real usage."""
        self.rows.append(
            Section("tokens: reserve prompt + max_tokens, settle to real usage (carol)")
        )
        self.wait(1)
        estimate = self.call(
            carol, "est. 1200+4000 tok", {"requests": 1, "tokens": 5200}, show="tpd"
        )
        self.wait(2)
        self.limiter.settle(estimate, {"tokens": 1200 + 310})
        self.note(carol, "settle to 1200+310", "settled", "tpd")

    def prepaid_credits(self, dave: Principal) -> None:
        """dave on go: $10 of credits spent on a dear model, denied, topped up, allowed."""
        model = "claude-opus-4.8"
        price = self.catalog.price(model, 100_000, 40_000)
        self.rows.append(
            Section(f"credits: $10 on go; {model} 100k in + 40k out = {dollars(price)} (dave)")
        )
        opus = {"requests": 1, "tokens": 140_000, "credits": price}
        for _ in range(3):
            self.wait(1)
            self.call(dave, model, opus, model=model, show="credits")
        self.wait(5)
        self.limiter.top_up(dave, "credits", 10_000_000)
        self.note(dave, "top_up $10.00", "top-up", "credits")
        self.wait(1)
        self.call(dave, model, opus, model=model, show="credits")

    def unlimited(self, erin: Principal) -> None:
        """erin on enterprise: a thousand calls in a second and one huge call, all allowed."""
        self.rows.append(Section("enterprise: no request or token limits at all (erin)"))
        self.wait(0.001)
        self.call(
            erin, "chat x1,000 in 1 s", {"requests": 1, "tokens": 2000}, times=1000, every=0.001
        )
        self.wait(1)
        self.call(erin, "one 2M-token call", {"requests": 1, "tokens": 2_000_000})

    def daily_tokens(self, frank: Principal) -> None:
        """frank on basic: a calendar-day token cap, denied until the next UTC midnight."""
        self.rows.append(Section("daily tokens: 200,000/day on basic, reset at 00:00 UTC (frank)"))
        self.wait(1)
        self.call(frank, "chat, 150,000 tok", {"requests": 1, "tokens": 150_000}, show="tpd")
        self.wait(1)
        over = self.call(frank, "chat, 60,000 tok", {"requests": 1, "tokens": 60_000})
        self.wait(over.retry_after or 0)
        self.call(frank, "same, next UTC day", {"requests": 1, "tokens": 60_000}, show="tpd")

    def priority(self, grace: Principal, heidi: Principal) -> None:
        """grace on mega, heidi on go: premium tokens share one upstream budget of 2,000,000 a
        minute, 20% of it kept for priority plans; at 85% mega is admitted, go refused."""
        self.rows.append(
            Section("priority: 2M premium tok/min shared, 20% kept for mega (grace, heidi)")
        )
        self.limiter.backend.reset([(GLOBAL_SLOT, "upstream")])  # shared: forget other runs'
        self.wait(1)
        big, small = {"requests": 1, "tokens": 1_700_000}, {"requests": 1, "tokens": 20_000}
        self.call(grace, "gpt-5.5, 1.7M tok", big, model="gpt-5.5", show="upstream")
        self.wait(1)
        self.call(heidi, "gpt-5.5, 20k tok", small, model="gpt-5.5")
        self.call(grace, "gpt-5.5, 20k tok", small, model="gpt-5.5", show="upstream")

    def report(self) -> str:
        """The title, the table and the one-line summary (about 105 columns wide: wrapping its
        cells would cost more lines than it saves columns)."""
        denied = sum(self.statuses.values())
        detail = ", ".join(
            f"{n} x {code}" for code, n in sorted(self.statuses.items(), reverse=True)
        )
        return "\n".join(
            [
                f"quota demo: built-in catalog 'zylo', storage {redact(self.backend)},"
                f" clock starts {START:%Y-%m-%dT%H:%M:%SZ}",
                "",
                render(HEADERS, self.rows, align=ALIGN),
                "",
                f"{self.decisions:,} decisions, {denied} denied ({detail}).",
            ]
        )


def run(backend: str = "memory://") -> str:
    """Play the demo and return its text."""
    demo = Demo(backend)
    try:
        demo.play()
    finally:
        demo.limiter.close()
    return demo.report()


def cmd_demo(args: argparse.Namespace) -> int:
    """Print the demo played on ``--backend``."""
    print(run(args.backend))
    return EXIT_OK
