"""Settling one admitted request from what its response showed.

Rules, applied once per request, before the final body message is forwarded (for SSE: before
the chunk carrying the usage or ``data: [DONE]``, where clients stop reading), so that the
client's next request sees them; or when the app returns or fails without one:

- the app raised before answering, or never answered: ``release`` (nothing counts);
- the plan is ``success_only`` and the status is not 2xx: ``release``;
- otherwise ``settle``: tokens and credits to the ``usage`` the response reported (JSON or
  SSE), else to the prompt estimate plus the generated text seen (4 characters a token) for a
  2xx, or to zero for a non-2xx without usage; an unreadable body (another content type or
  encoding) keeps the estimate. ``input_tokens`` and ``output_tokens``, when charged, settle
  apart to the prompt and the completion of the same reading. Requests and tool meters keep
  their estimate.
- the client disconnected (``http.disconnect``, or ``send`` raised): settle what was observed
  by the same rules, even when the app then raises.
"""

from __future__ import annotations

import logging

from ..algorithms import MAX_SAFE
from ..catalog import Principal
from ..decision import Decision
from .gate import Gate
from .openai import Call
from .reader import UsageReader
from .responses import with_headers
from .types import Message, Receive, Send, header

log = logging.getLogger("quota.asgi")
_FINAL = ("http.response.pathsend", "http.response.zerocopysend")
#: The meters settled from the response's usage (the others keep their estimate).
SETTLED = frozenset({"tokens", "input_tokens", "output_tokens", "credits"})


class Settlement:
    """The wrapped ``receive`` and ``send`` of one admitted request, and its settlement."""

    def __init__(self, gate: Gate, who: Principal, call: Call, decision: Decision) -> None:
        self.gate = gate
        self.who = who
        self.call = call
        self.decision = decision
        self.headers = decision.headers()
        self.status: int | None = None
        self.reader: UsageReader | None = None
        self.disconnected = False
        self.closed = False
        self.metered = not SETTLED.isdisjoint(call.cost)

    def wrap_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message.get("type") == "http.disconnect":
                self.disconnected = True
            return message

        return wrapped

    def wrap_send(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                self.status = int(message["status"])
                raw = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", ())]
                if self.metered:
                    ctype = header(raw, b"content-type")
                    encoding = header(raw, b"content-encoding")
                    self.reader = UsageReader(
                        ctype[0] if ctype else b"", encoding[0] if encoding else b""
                    )
                message = with_headers(message, self.headers)
            elif kind == "http.response.body":
                reader = self.reader
                if reader is not None and not self.closed:
                    reader.feed(message.get("body", b""))
                    if reader.complete:
                        await self.close()
                if not message.get("more_body", False):
                    await self.close()
            elif kind in _FINAL:
                if self.reader is not None:
                    self.reader.readable = False
                await self.close()
            try:
                await send(message)
            except BaseException:
                self.disconnected = True
                raise

        return wrapped

    async def done(self) -> None:
        """The app returned."""
        await self.close()

    async def failed(self) -> None:
        """The app raised: release, unless the client was gone (then settle what was seen)."""
        if self.disconnected:
            await self.close()
        else:
            await self.close(release=True)

    async def close(self, *, release: bool = False) -> None:
        """Settle or release, once."""
        if self.closed:
            return
        self.closed = True
        plan = self.gate.catalog.plan(self.who.plan)
        ok = self.status is not None and 200 <= self.status < 300
        try:
            if release or self.status is None or (plan.success_only and not ok):
                await self.gate.run(self.gate.limiter.release, self.decision)
            else:
                await self.gate.run(self.gate.limiter.settle, self.decision, self.actual(ok))
        except Exception:
            log.exception("quota: settling request %s failed", self.decision.request_id)

    def actual(self, ok: bool) -> dict[str, int]:
        """Actual usage of the settled meters the call charged (empty: every meter keeps its
        estimate)."""
        if not self.metered:
            return {}
        reader = self.reader
        if reader is not None:
            reader.finish()
        if reader is not None and (ok or reader.has_usage):
            seen = reader.tokens(self.call.prompt_tokens)
        else:
            seen = None if ok else (0, 0)
        if seen is None:
            return {}
        prompt, completion = seen
        cost = self.call.cost
        used = {"tokens": prompt + completion, "input_tokens": prompt, "output_tokens": completion}
        out = {meter: min(amount, MAX_SAFE) for meter, amount in used.items() if meter in cost}
        if "credits" in cost and self.call.model is not None:
            price = self.gate.catalog.price(self.call.model, prompt, completion)
            out["credits"] = min(price, MAX_SAFE)
        return out
