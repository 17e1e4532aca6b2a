"""What the stand-in upstream answers on its text routes: chat/completions, completions,
``/generate`` and ``/responses``, as JSON bodies and stream events with real ``usage``.

Pure functions of the request body (ids and timestamps aside), used by ``upstream``. A text
reply is fixed words quoting the last input; its completion tokens are its words, cut at the
output cap; its prompt tokens are the profile's estimate of the request. The other routes'
answers (embeddings, moderations, images, web-extract) are in ``upstream_other``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..asgi import estimate_prompt_tokens

Json = dict[str, Any]
#: One server-sent event: its ``event:`` name (None: a bare ``data:`` line) and its data.
Event = tuple[str | None, Json]

_INTRO = ("This", "is", "the", "stand-in", "upstream", "of", "quota", "serve.", "You", "said:")
#: The output caps, in the order the profile reads them.
OUTPUT_CAPS = ("max_completion_tokens", "max_tokens", "max_new_tokens", "max_output_tokens")


class BadRequest(ValueError):
    """The request body lacks what the endpoint needs (answered 400)."""


def _last_text(value: Any) -> str:
    """The last text in ``value``: a string, the last message or part of a list that has
    text, a message's ``content`` or a part's ``text``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "content" in value:
            return _last_text(value["content"])
        text = value.get("text")
        return text if isinstance(text, str) else ""
    if isinstance(value, list):
        for item in reversed(value):
            text = _last_text(item)
            if text.strip():
                return text
    return ""


def reply_words(body: Json) -> list[str]:
    """The reply to ``body``, as words: fixed text quoting its last input (``messages``, else
    ``input``, else ``prompt``), up to 50 words of it."""
    said = next((_last_text(body[k]) for k in ("messages", "input", "prompt") if k in body), "")
    return [*_INTRO, *(said.split()[:50] or ["nothing"])]


def output_cap(body: Json) -> int | None:
    """The first positive integer among the output caps, else None."""
    for name in OUTPUT_CAPS:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


@dataclass(frozen=True)
class Reply:
    """One text reply: its words (cut at the cap), whether they were cut, its prompt tokens."""

    words: list[str]
    truncated: bool
    prompt_tokens: int
    model: str

    @classmethod
    def to(cls, body: Json, default_model: str = "stand-in") -> Reply:
        words, cap = reply_words(body), output_cap(body)
        model = body.get("model")
        return cls(
            words=words[:cap] if cap is not None else words,
            truncated=cap is not None and len(words) > cap,
            prompt_tokens=estimate_prompt_tokens(body),
            model=model if isinstance(model, str) else default_model,
        )

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def pieces(self) -> list[str]:
        """The text as stream deltas: one word each, with the space that follows it."""
        return [w if i == len(self.words) - 1 else w + " " for i, w in enumerate(self.words)]

    def usage(self, done: int | None = None) -> Json:
        """Chat-style usage, after ``done`` words (default: all)."""
        completion = len(self.words) if done is None else done
        total = self.prompt_tokens + completion
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": total,
        }


# -- chat/completions, completions, /generate ------------------------------------------------


def _completion_head(reply: Reply, chat: bool, stream: bool) -> Json:
    kind = "chat.completion" if chat else "text_completion"
    return {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}",
        "object": f"{kind}.chunk" if chat and stream else kind,
        "created": int(time.time()),
        "model": reply.model,
    }


def completion(body: Json, chat: bool) -> Json:
    """A whole chat completion (``chat``) or text completion, with ``usage``."""
    reply = Reply.to(body)
    choice: Json = {"index": 0, "finish_reason": "length" if reply.truncated else "stop"}
    if chat:
        choice["message"] = {"role": "assistant", "content": reply.text}
    else:
        choice["text"] = reply.text
    choice["logprobs"] = None
    return {**_completion_head(reply, chat, False), "choices": [choice], "usage": reply.usage()}


def _choice(chat: bool, piece: str | None, finish: str | None, first: bool) -> Json:
    """One choice of a stream chunk: a delta (chat) or text; ``piece`` None on the last."""
    choice: Json = {"index": 0}
    if chat:
        delta: Json = {} if piece is None else {"content": piece}
        choice["delta"] = {"role": "assistant", **delta} if first else delta
    else:
        choice["text"] = piece or ""
    choice["finish_reason"] = finish
    return choice


def completion_events(body: Json, chat: bool) -> list[Event]:
    """A streamed completion: a chunk per word, then the finishing chunk. With
    ``stream_options.include_usage`` every chunk has ``usage`` (null) and a last chunk carries
    it, as OpenAI does; with ``continuous_usage_stats`` too, every chunk carries the usage so
    far, as vLLM does."""
    reply = Reply.to(body)
    head = _completion_head(reply, chat, True)
    options = body.get("stream_options")
    options = options if isinstance(options, dict) else {}
    include = options.get("include_usage") is True
    continuous = include and options.get("continuous_usage_stats") is True
    chunks = [
        {**head, "choices": [_choice(chat, piece, None, first=i == 0)]}
        for i, piece in enumerate(reply.pieces())
    ]
    finish = "length" if reply.truncated else "stop"
    chunks.append({**head, "choices": [_choice(chat, None, finish, first=False)]})
    if include:
        for i, chunk in enumerate(chunks):
            chunk["usage"] = reply.usage(min(i + 1, len(reply.words))) if continuous else None
        chunks.append({**head, "choices": [], "usage": reply.usage()})
    return [(None, chunk) for chunk in chunks]


# -- /responses ------------------------------------------------------------------------------


def _response(body: Json, reply: Reply, rid: str, mid: str, final: bool) -> Json:
    """The Responses API object: in progress (no output yet), or final with its usage."""
    status = "incomplete" if reply.truncated else "completed"
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status if final else "in_progress",
        "model": reply.model,
        "output": [_message(mid, status, [_text_part(reply.text)])] if final else [],
        "usage": _response_usage(reply) if final else None,
        "error": None,
        "incomplete_details": (
            {"reason": "max_output_tokens"} if final and reply.truncated else None
        ),
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": {},
        "parallel_tool_calls": True,
        "temperature": 1.0,
        "top_p": 1.0,
        "tool_choice": "auto",
        "tools": [],
    }


def _response_usage(reply: Reply) -> Json:
    return {
        "input_tokens": reply.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": len(reply.words),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": reply.prompt_tokens + len(reply.words),
    }


def _message(mid: str, status: str, content: list[Json]) -> Json:
    return {"id": mid, "type": "message", "status": status, "role": "assistant", "content": content}


def _text_part(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": []}


def _ids() -> tuple[str, str]:
    return f"resp_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}"


def response(body: Json) -> Json:
    """A whole Responses API object: one output_text message and ``usage``."""
    return _response(body, Reply.to(body), *_ids(), final=True)


def response_events(body: Json) -> list[Event]:
    """A streamed response, as the OpenAI Responses streaming reference orders its events:
    created, in_progress, the item and its part added, a text delta per word, the text, part
    and item done, then ``response.completed`` with the usage (``response.incomplete`` when
    cut at the output cap)."""
    reply = Reply.to(body)
    rid, mid = _ids()
    shell = _response(body, reply, rid, mid, final=False)
    final = _response(body, reply, rid, mid, final=True)
    at = {"item_id": mid, "output_index": 0, "content_index": 0}
    events: list[Event] = [
        ("response.created", {"response": shell}),
        ("response.in_progress", {"response": shell}),
        (
            "response.output_item.added",
            {"output_index": 0, "item": _message(mid, "in_progress", [])},
        ),
        ("response.content_part.added", {**at, "part": _text_part("")}),
    ]
    events += [
        ("response.output_text.delta", {**at, "delta": p, "logprobs": []}) for p in reply.pieces()
    ]
    events += [
        ("response.output_text.done", {**at, "text": reply.text, "logprobs": []}),
        ("response.content_part.done", {**at, "part": _text_part(reply.text)}),
        ("response.output_item.done", {"output_index": 0, "item": final["output"][0]}),
        (f"response.{final['status']}", {"response": final}),
    ]
    return [
        (name, {"type": name, "sequence_number": i, **data})
        for i, (name, data) in enumerate(events)
    ]
