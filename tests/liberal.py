"""The oracle of the boundary tests: an independent, LIBERAL reading of a request the app
received (no logic of quota.asgi is used): the model, every tool in any spelling, every media
part anywhere, every route a lenient upstream could resolve the path to, mapped to Zylo's
entitlements (basic: basic models, no tools, no media; go: no code_execution; pro: all);
contract item 1 (path normalisation) written again from its text; and ``Recorder``, an app
that applies all this to what it receives and answers with a usage it chose."""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from quota.asgi.types import Receive, Scope, Send

PREMIUM = frozenset({"claude-opus-4.8", "gpt-5.5", "gemini-3.1-pro-preview"})
#: plan -> (premium models allowed, features); on Zylo every plan with search also has tools
PLANS = {
    "basic": (False, frozenset[str]()),
    "go": (True, frozenset({"tools", "search", "images"})),
    "pro": (True, frozenset({"tools", "search", "images", "code_execution"})),
}
#: built-in routes whose JSON body surely settles tokens (images, audio... may not)
TOKEN_ROUTES = {"/chat/completions", "/completions", "/generate", "/responses", "/embeddings"}
POST_ROUTES = TOKEN_ROUTES | {"/images/generations", "/images/edits", "/images/variations"}
POST_ROUTES |= {"/audio/transcriptions", "/audio/translations", "/audio/speech"}
POST_ROUTES |= {"/moderations", "/web-extract"}
READ_ROUTES = {"/models", "/stats", "/validate"}
NATIVE = dict.fromkeys(["code_execution", "code_interpreter"], "code_execution")
NATIVE |= dict.fromkeys(["google_search", "google_search_retrieval", "url_context"], "search")
NATIVE |= dict.fromkeys(["web_search", "web_search_preview"], "search")
MEDIA_WORDS = frozenset({"image", "audio", "video", "file", "inline"})
UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")


def snake(name: str) -> str:
    """googleSearch -> google_search; a dated suffix (_2025_03_11, _20250311) dropped."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    return re.sub(r"_(\d{4}_\d{2}_\d{2}|\d{8})$", "", name)


def route_key(path: str) -> str:
    path = path.rstrip("/") or "/"
    return "/" if path == "/v1" else path[3:] if path.startswith("/v1/") else path


def is_read(route: str) -> bool:
    return route in READ_ROUTES or route.startswith("/models/")


def liberal_routes(decoded: str) -> set[str]:
    """Every route a lenient upstream could resolve a decoded path to: backslashes as
    slashes, truncated at NUL, dot segments resolved (clamped at the root), slashes merged."""
    out = set()
    for variant in (decoded, decoded.replace("\\", "/"), decoded.split("\x00")[0]):
        stack: list[str] = []
        for segment in variant.split("/"):
            if segment == "..":
                stack = stack[:-1]
            elif segment not in ("", "."):
                stack.append(segment)
        out.add(route_key("/" + "/".join(stack)))
    return out


def tool_features(tool: object) -> set[str]:
    """Any tool asks for ``tools``; any name in it (type, name, function.name, a key) that
    normalises to a native tool asks for that tool's feature as well."""
    names: list[object] = [tool] if isinstance(tool, str) else []
    if isinstance(tool, dict):
        function = tool.get("function")
        names += [*tool, tool.get("type"), tool.get("name")]
        names.append(function.get("name") if isinstance(function, dict) else None)
    found = {NATIVE.get(snake(n)) for n in names if isinstance(n, str)}
    return {"tools"} | {f for f in found if f}


def mentions_media(name: object) -> bool:
    return isinstance(name, str) and not MEDIA_WORDS.isdisjoint(snake(name).split("_"))


def has_media(value: object) -> bool:
    """Any dict whose ``type`` or keys mention image/audio/video/file/inline, anywhere."""
    if isinstance(value, dict):
        if mentions_media(value.get("type")) or any(mentions_media(k) for k in value):
            return True
        return any(has_media(v) for v in value.values())
    return isinstance(value, list) and any(has_media(v) for v in value)


@dataclass
class Seen:
    """What a lenient upstream could act on, and what of it the plan is not entitled to."""

    model: str | None = None
    features: set[str] = field(default_factory=set)
    parsed: bool = False  # a JSON object or a form: the middleware prices it
    preflight: bool = False
    violations: list[str] = field(default_factory=list)


def liberal_body(body: bytes, ctype: str) -> Seen:
    """What a lenient upstream could act on in a body, whatever its content type says."""
    seen = Seen()
    if ctype.startswith("multipart/form-data"):
        boundary = ctype.partition("boundary=")[2].encode()
        for part in body.split(b"--" + boundary)[1:]:
            head, _, value = part.partition(b"\r\n\r\n")
            if b"filename=" in head:
                seen.features.add("images")
            elif b'name="model"' in head:
                seen.model = value.removesuffix(b"\r\n").decode(errors="replace")
        seen.parsed = True
        return seen
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return seen
    if not isinstance(doc, dict):
        return seen
    seen.parsed = True
    seen.model = doc["model"] if isinstance(doc.get("model"), str) else None
    tools = doc.get("tools")
    for tool in tools if isinstance(tools, list) else [tools] if tools else []:
        seen.features |= tool_features(tool)
    if doc.get("web_search_options") is not None:
        seen.features |= {"tools", "search"}
    if doc.get("functions"):
        seen.features.add("tools")
    if has_media(doc):
        seen.features.add("images")
    return seen


def normalise(raw: str) -> str | None:
    """Contract item 1, written independently: the raw_path the app must get (None: 400)."""
    if "\\" in raw:
        return None
    out: list[str] = []
    for segment in raw.split("/")[1:]:
        try:
            text = unquote_to_bytes(segment).decode("utf-8")
        except UnicodeDecodeError:
            return None
        if any(c in text for c in "/\\\x00"):
            return None
        if text == "..":
            if not out:
                return None
            out.pop()
        elif text not in ("", "."):
            out.append(re.sub(r"%([0-9A-Fa-f]{2})|%", _recode, segment))
    return "/" + "/".join(out) + ("/" if out and raw.endswith("/") else "")


def _recode(match: re.Match[str]) -> str:
    """An escape: an unreserved character decoded, any other kept in upper case; a lone '%'
    escaped (else it would join the characters after it into an escape)."""
    if match[1] is None:
        return "%25"
    char = chr(int(match[1], 16))
    return char if char in UNRESERVED else "%" + match[1].upper()


def inspect(plan: str, sent: str | None, keyed: bool, scope: Scope, body: bytes) -> Seen:
    """Read a request the app received (``sent``: its path as sent on the wire, to check the
    normalisation) and list what ``plan`` is not entitled to in ``violations``."""
    method, headers = scope["method"], dict(scope["headers"])
    cors = b"origin" in headers and b"access-control-request-method" in headers
    seen = liberal_body(body, headers.get(b"content-type", b"").decode("latin-1"))
    seen.preflight = method == "OPTIONS" and not body and cors
    bad = seen.violations.append
    if not keyed and not seen.preflight:
        bad("forwarded without a key")
    raw_path: bytes = scope.get("raw_path") or b""
    expected = None if sent is None else normalise(sent)
    if sent is not None and expected is None:
        bad(f"invalid path {sent!r} forwarded")
    elif expected is not None and (scope["path"], raw_path) != (
        unquote(expected),
        expected.encode(),
    ):
        bad(f"{sent!r} forwarded as {scope['path']!r} {raw_path!r}, not {expected!r}")
    premium, features = PLANS[plan]
    routes = liberal_routes(scope["path"]) | liberal_routes(
        unquote((raw_path or b"").decode("latin-1"))
    )
    for route in () if seen.preflight else routes:
        if (route in POST_ROUTES and method != "POST") or (
            is_read(route) and method not in ("GET", "HEAD")
        ):
            bad(f"{method} on {route}")
        if route in POST_ROUTES and route.startswith("/images/") and "images" not in features:
            bad(f"{route} on {plan}")
    if seen.model in PREMIUM and not premium:
        bad(f"model {seen.model} on {plan}")
    if seen.features - features:
        bad(f"features {sorted(seen.features - features)} on {plan}")
    return seen


# -- the recording app ----------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    style: str  # json, json_responses, sse (cumulative usage), sse_responses
    prompt: int
    completion: int

    def chunks(self) -> tuple[bytes, list[bytes]]:
        p, c = self.prompt, self.completion
        done = {"input_tokens": p, "output_tokens": c, "total_tokens": p + c}
        if self.style == "json":
            usage = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
            doc = {"choices": [{"message": {"content": "ok"}}], "usage": usage}
            return b"application/json", [json.dumps(doc).encode()]
        if self.style == "json_responses":
            doc = {"output": [{"content": [{"type": "output_text", "text": "ok"}]}]}
            return b"application/json", [json.dumps({**doc, "usage": done}).encode()]
        if self.style == "sse":  # vLLM continuous_usage_stats
            return b"text/event-stream", [
                sse({"choices": [{"delta": {"content": "ab"}}], "usage": usage})
                for usage in (
                    {"prompt_tokens": p, "completion_tokens": x, "total_tokens": p + x}
                    for x in (c // 3, 2 * c // 3, c)
                )
            ] + [b"data: [DONE]\n\n"]
        delta = {"type": "response.output_text.delta", "delta": "ab"}
        completed = {"type": "response.completed", "response": {"usage": done}}
        return b"text/event-stream", [sse(delta), sse(completed)]


def sse(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event).encode() + b"\n\n"


class Recorder:
    """An app that checks every request it gets against ``plan`` (``violations``) and
    answers 200 with the usage of ``reply``. ``raw``: the path as sent, None to skip that
    check; ``keyed``: whether the client sent a key; ``calls``: (method, path, raw_path)."""

    def __init__(self, plan: str, raw: str | None, keyed: bool, reply: Reply) -> None:
        self.plan, self.raw, self.keyed, self.reply = plan, raw, keyed, reply
        self.reached = False
        self.seen = Seen()  # the last request's
        self.violations: list[str] = []  # every request's
        self.calls: list[tuple[str, str, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.reached, body, more = True, b"", True
        self.calls.append((scope["method"], scope["path"], scope.get("raw_path") or b""))
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        self.seen = inspect(self.plan, self.raw, self.keyed, scope, body)
        self.violations += self.seen.violations
        ctype, chunks = self.reply.chunks()
        headers = [(b"content-type", ctype)]  # a length: the client reads to the end
        headers += [(b"content-length", b"%d" % len(chunks[0]))] * (len(chunks) == 1)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i, chunk in enumerate(chunks, 1):
            await send({"type": "http.response.body", "body": chunk, "more_body": i < len(chunks)})
