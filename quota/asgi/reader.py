"""Token usage read from a response as it passes: JSON bodies and SSE streams.

Nothing here delays or holds the response: ``feed`` looks at each body chunk and returns.
Memory is bounded: a JSON body is kept up to ``max_json`` bytes (beyond, only a tail in which
the trailing ``"usage"`` object is looked for), an SSE stream only keeps the unfinished line
(at most ``max_line`` bytes; a longer line is skipped). gzip and deflate are inflated with a
bound (``max_inflated`` bytes in all): past it the reader stops and the estimate stands.

Usage may come once at the end or cumulatively on every chunk (vLLM's
``continuous_usage_stats``): each count keeps the largest value seen.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

from ..algorithms import MAX_SAFE

_LIMIT = MAX_SAFE // 2
_TAIL = 64 * 1024
_USAGE = re.compile(rb'"usage(?:Metadata)?"\s*:\s*')
# The events that end a stream besides ``data: [DONE]`` (Responses API, Anthropic).
_FINAL_TYPES = frozenset(
    {"response.completed", "response.failed", "response.incomplete", "message_stop"}
)
# A chunk worth parsing: it carries usage, or it may be a final event.
_PARSE = re.compile(
    rb'"usage(?:Metadata)?"\s*:\s*\{|"type"\s*:\s*"(?:response\.(?:completed|failed|incomplete)|message_stop)"'
)
# Generated text in a stream chunk, without parsing it: chat deltas, completions, tool-call
# arguments, Responses API text deltas. Escapes count as their source length (an estimate).
_TEXT = re.compile(rb'"(?:content|text|arguments|delta)"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _count(value: object) -> int | None:
    """A token count: a non-negative int (not a bool), clamped; None otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return min(value, _LIMIT)


def _text(value: object) -> int:
    """Characters of generated text in a message, delta or content-part list."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text(part.get("text")) for part in value if isinstance(part, dict))
    return 0


class UsageReader:
    """Watches one response body; ``usage`` and ``text_chars`` say what it carried.

    ``readable`` is False for content it cannot read (another content type, an unknown
    encoding): the caller then keeps its estimate instead of settling on nothing.
    """

    def __init__(
        self,
        content_type: bytes,
        content_encoding: bytes = b"",
        *,
        max_json: int = 8 * 1024 * 1024,
        max_line: int = 1024 * 1024,
        max_inflated: int = 8 * 1024 * 1024,
    ) -> None:
        media = content_type.split(b";", 1)[0].strip().lower()
        self.mode = (
            "sse" if media == b"text/event-stream" else "json" if media.endswith(b"json") else ""
        )
        encoding = content_encoding.strip().lower()
        self._inflate: Any = None
        if encoding in (b"gzip", b"x-gzip"):
            self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == b"deflate":
            self._inflate = zlib.decompressobj()
        elif encoding not in (b"", b"identity"):
            self.mode = ""
        self.readable = bool(self.mode)
        self.max_json = max_json
        self.max_line = max_line
        self.max_inflated = max_inflated
        self.inflated = 0
        self.capped = False
        self.prompt: int | None = None
        self.completion: int | None = None
        self.total: int | None = None
        self.text_chars = 0
        self._parts: list[bytes] = []
        self._size = 0
        self._tail = b""
        self._skip = False
        self._done = False

    @property
    def has_usage(self) -> bool:
        return self.prompt is not None or self.completion is not None or self.total is not None

    @property
    def complete(self) -> bool:
        """An SSE stream has ended (``data: [DONE]``, ``response.completed`` and the like):
        settle now, before that event goes out, since clients stop reading there."""
        return self.mode == "sse" and self._done

    def feed(self, chunk: bytes) -> None:
        """Look at one body chunk (never raises on bad content: it stops reading)."""
        if not self.readable or not chunk:
            return
        if self._inflate is not None:
            chunk = self._inflated(chunk)
            if not chunk:
                return
        if self.mode == "sse":
            self._feed_sse(chunk)
        else:
            self._feed_json(chunk)

    def _inflated(self, chunk: bytes) -> bytes:
        """Inflate one chunk within what is left of ``max_inflated`` (a bomb stops here)."""
        room = self.max_inflated - self.inflated
        try:
            out: bytes = self._inflate.decompress(chunk, room)
        except zlib.error:
            self.readable = False
            return b""
        self.inflated += len(out)
        if self._inflate.unconsumed_tail or self.inflated >= self.max_inflated:
            self.readable, self.capped = False, True
            return b""
        return out

    def finish(self) -> None:
        """The body is complete: parse the JSON document (SSE needs nothing more)."""
        if self.mode != "json" or not self.readable:
            return
        if self._parts:
            try:
                self._event(json.loads(b"".join(self._parts)), whole=True)
            except (ValueError, RecursionError):
                self.readable = False
            self._parts = []
            return
        for match in reversed(list(_USAGE.finditer(self._tail))):
            try:
                usage, _ = json.JSONDecoder().raw_decode(self._tail[match.end() :].decode())
            except (ValueError, RecursionError):
                continue
            self._usage(usage)
            return

    def tokens(self, prompt_estimate: int) -> tuple[int, int] | None:
        """(prompt, completion) tokens: from ``usage`` when seen, else the prompt estimate and
        the generated text seen (4 characters a token); None when the body was unreadable.

        A count the usage lacks comes from the total when there is one, else from the same
        estimates: a usage naming only its output (a stream cut before its input was told)
        settles the input to the estimate, never to nothing."""
        if self.capped:
            return None
        generated = -(-self.text_chars // 4)
        if self.has_usage:
            prompt, completion, total = self.prompt, self.completion, self.total
            if prompt is None and completion is None:
                prompt = min(prompt_estimate, total or 0)
            if prompt is None:
                prompt = prompt_estimate if total is None else max(0, total - (completion or 0))
            if completion is None:
                completion = generated if total is None else max(0, total - prompt)
            return prompt, completion
        if not self.readable:
            return None
        return prompt_estimate, generated

    # -- parsing -----------------------------------------------------------------------------

    def _feed_json(self, chunk: bytes) -> None:
        if self._parts or self._size == 0:
            self._size += len(chunk)
            if self._size <= self.max_json:
                self._parts.append(chunk)
                return
            self._tail = b"".join(self._parts)[-_TAIL:]
            self._parts = []
        self._tail = (self._tail + chunk)[-_TAIL:]

    def _feed_sse(self, data: bytes) -> None:
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                rest = data[start:]
                if rest and not self._skip:
                    self._parts.append(rest)
                    self._size += len(rest)
                    if self._size > self.max_line:
                        self._parts, self._size, self._skip = [], 0, True
                return
            line = data[start:end]
            start = end + 1
            if self._skip:
                self._skip = False
                continue
            if self._parts:
                line = b"".join(self._parts) + line
                self._parts, self._size = [], 0
            self._line(line)

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return
        payload = line[5:].strip()
        if not payload.startswith(b"{"):
            self._done = self._done or payload == b"[DONE]"
            return  # "[DONE]", comments, non-JSON events
        if not _PARSE.search(payload):
            # most chunks: count their text, parse nothing
            self.text_chars += sum(len(m) for m in _TEXT.findall(payload))
            return
        try:
            event = json.loads(payload)
        except (ValueError, RecursionError):
            return
        self._event(event, whole=False)

    def _event(self, event: object, *, whole: bool) -> None:
        """Usage and generated text from a response object or a stream chunk."""
        if not isinstance(event, dict):
            return
        if not whole and event.get("type") in _FINAL_TYPES:
            self._done = True
        usage = event.get("usage", event.get("usageMetadata"))  # OpenAI, Anthropic; Gemini
        if usage is None:  # Responses API final events; Anthropic's message_start
            for key in ("response", "message"):
                inner = event.get(key)
                if isinstance(inner, dict) and "usage" in inner:
                    usage = inner["usage"]
                    break
        self._usage(usage)
        choices = event.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, dict):
                    continue
                self.text_chars += _text(choice.get("text"))
                message = choice.get("message" if whole else "delta")
                if isinstance(message, dict):
                    self.text_chars += _text(message.get("content"))
                    calls = message.get("tool_calls")
                    for call in calls if isinstance(calls, list) else ():
                        function = call.get("function") if isinstance(call, dict) else None
                        if isinstance(function, dict):
                            self.text_chars += _text(function.get("arguments"))
        if whole:
            for key in ("text", "generated_text", "output_text"):
                self.text_chars += _text(event.get(key))
        elif isinstance(event.get("delta"), str):  # Responses API text deltas
            self.text_chars += len(event["delta"])

    def _usage(self, usage: object) -> None:
        if not isinstance(usage, dict):
            return
        if "promptTokenCount" in usage or "candidatesTokenCount" in usage:  # Gemini
            prompt = _count(usage.get("promptTokenCount"))
            completion = _sum(usage.get("candidatesTokenCount"), usage.get("thoughtsTokenCount"))
            total = _count(usage.get("totalTokenCount"))
        else:  # Anthropic counts cache writes and reads beside input_tokens, not in them
            prompt = _sum(
                usage.get("prompt_tokens", usage.get("input_tokens")),
                usage.get("cache_creation_input_tokens"),
                usage.get("cache_read_input_tokens"),
            )
            completion = _count(usage.get("completion_tokens", usage.get("output_tokens")))
            total = _count(usage.get("total_tokens"))
        self.prompt = _larger(self.prompt, prompt)
        self.completion = _larger(self.completion, completion)
        self.total = _larger(self.total, total)


def _sum(*values: object) -> int | None:
    """The sum of the counts present (Gemini bills thinking as output); None when none is."""
    counts = [c for c in map(_count, values) if c is not None]
    return min(sum(counts), _LIMIT) if counts else None


def _larger(seen: int | None, new: int | None) -> int | None:
    """The larger of two counts, either of which may be missing."""
    if seen is None or new is None:
        return new if seen is None else seen
    return max(seen, new)
