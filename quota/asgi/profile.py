"""The ``openai`` profile: which endpoint a request is, and what it costs before it runs.

Routes (a trailing slash and the ``/v1`` prefix are optional where shown):

============================================  ===========  ===============================
path                                          kind         charged (meters the catalog knows)
============================================  ===========  ===============================
``/v1/chat/completions``                      chat         requests 1, tokens, credits
``/v1/completions``, ``/generate``            generate     requests 1, tokens, credits
``/v1/web-extract``                           web_extract  requests 1, web_extract 1
``/v1/images/generations``                    images       requests 1, images n
``/v1/models[/...]``, ``/stats``, ``/validate``  free         nothing (a key is still needed)
anything else, or GET on the above            other        requests 1 (``unknown="charge"``)
============================================  ===========  ===============================

Tokens are the prompt estimate plus the output reserve (``max_completion_tokens``, else
``max_tokens``, else ``default_max_tokens``; times ``n``); credits are
``catalog.price(model, prompt, output)``. Function tools ask for the feature ``tools``; native
tools (``google_search``, ``url_context``, ``code_execution``; ``web_search`` counts as
``google_search``) ask for their own feature and charge 1 on their meter, through the
catalog's aliases; image content parts ask for ``images``. A feature no plan of the catalog
names is not gated, and a meter the catalog does not know is not charged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..algorithms import MAX_SAFE
from ..catalog import Catalog
from .responses import bad_request

Kind = Literal["chat", "generate", "web_extract", "images", "free", "other"]
Estimator = Callable[[Mapping[str, Any]], int]

BODY_KINDS = frozenset({"chat", "generate", "web_extract", "images"})
MAX_OUTPUT_TOKENS = 2**31 - 1
MAX_N = 128
ROUTES: dict[str, Kind] = {
    "/chat/completions": "chat",
    "/completions": "generate",
    "/generate": "generate",
    "/web-extract": "web_extract",
    "/images/generations": "images",
    "/models": "free",
    "/stats": "free",
    "/validate": "free",
}
NATIVE_TOOLS = {
    "google_search": "google_search",
    "google_search_retrieval": "google_search",
    "web_search": "google_search",
    "web_search_preview": "google_search",
    "url_context": "url_context",
    "code_execution": "code_execution",
    "code_interpreter": "code_execution",
}
IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})
_TEXT_KEYS = ("messages", "prompt", "input", "inputs", "system", "instructions", "suffix")
_SKIP_KEYS = frozenset(
    {"role", "type", "image_url", "input_image", "image", "input_audio", "file", "audio"}
)


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    """A fast prompt-token estimate: 4 characters per token over the text the model reads
    (messages, prompt, input, tools; not roles, part types, image or audio data), plus 4 per
    message. Images are counted by the profile (``image_tokens`` each)."""
    chars = 0
    stack: list[Any] = [body.get(k) for k in _TEXT_KEYS]
    stack.append(body.get("tools"))
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if not value.startswith("data:"):
                chars += len(value)
        elif isinstance(value, dict):
            stack.extend(v for k, v in value.items() if k not in _SKIP_KEYS)
        elif isinstance(value, list):
            stack.extend(value)
    messages = body.get("messages")
    overhead = 4 * len(messages) if isinstance(messages, list) else 0
    return -(-chars // 4) + overhead


@dataclass(frozen=True, slots=True)
class Call:
    """What one request is, and the estimate ``acquire`` charges for it."""

    kind: Kind
    cost: dict[str, int] = field(default_factory=dict)
    model: str | None = None
    features: frozenset[str] = frozenset()
    stream: bool = False
    prompt_tokens: int = 0
    output_tokens: int = 0


class OpenAIProfile:
    """Configuration of the ``openai`` profile; ``bind(catalog)`` gives its classifier.

    ``unknown``: ``"charge"`` (default) charges other paths one request; ``"free"`` lets them
    through uncharged (a key is needed either way). ``routes`` adds or overrides paths.
    """

    name = "openai"

    def __init__(
        self,
        *,
        estimator: Estimator = estimate_prompt_tokens,
        default_max_tokens: int = 4096,
        image_tokens: int = 765,
        unknown: Literal["charge", "free"] = "charge",
        routes: Mapping[str, Kind] | None = None,
        native_tools: Mapping[str, str] | None = None,
    ) -> None:
        if unknown not in ("charge", "free"):
            raise ValueError(f"unknown must be 'charge' or 'free', got {unknown!r}")
        if not 0 < default_max_tokens <= MAX_OUTPUT_TOKENS or image_tokens < 0:
            raise ValueError("default_max_tokens must be positive and image_tokens not negative")
        self.estimator = estimator
        self.default_max_tokens = default_max_tokens
        self.image_tokens = image_tokens
        self.unknown = unknown
        self.routes = {**ROUTES, **(routes or {})}
        self.native_tools = {**NATIVE_TOOLS, **(native_tools or {})}

    def bind(self, catalog: Catalog) -> Classifier:
        return Classifier(self, catalog)


class Classifier:
    """The profile applied to one catalog: routes requests and prices their bodies."""

    def __init__(self, profile: OpenAIProfile, catalog: Catalog) -> None:
        self.profile = profile
        self.catalog = catalog
        self.known = catalog.meter_names | set(catalog.meters.aliases)
        named = {f for plan in catalog.plans.values() for f in plan.features} - {"*"}
        self.named = named

    # -- routing -----------------------------------------------------------------------------

    def route(self, method: str, path: str) -> Kind:
        """The kind of a request from its method and path (no body needed)."""
        path = path.rstrip("/") or "/"
        if path.startswith("/v1/"):
            path = path[3:]
        kind = self.profile.routes.get(path)
        if kind is None and path.startswith("/models/"):
            kind = "free"
        if kind is None or (kind in BODY_KINDS and method != "POST"):
            return "other"
        return kind

    def bodiless(self, kind: Kind) -> Call:
        """The call of a request whose body is not read (free and other kinds)."""
        if kind == "other" and self.profile.unknown == "charge":
            return Call("other", self._meters({"requests": 1}))
        return Call("free")

    # -- bodies ------------------------------------------------------------------------------

    def classify(self, kind: Kind, body: object) -> Call:
        """Validate a parsed JSON body of a ``kind`` endpoint and estimate its cost (400s)."""
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object", "invalid_request_body")
        model = _string(body, "model", required=kind == "chat")
        stream = _flag(body, "stream")
        if kind == "web_extract":
            return Call(kind, self._meters({"requests": 1, "web_extract": 1}))
        features: set[str] = set()
        cost: dict[str, int] = {"requests": 1}
        if kind == "images":
            n = _integer(body, "n", 1, MAX_N) or 1
            cost["images"] = n
            features.add("images")
            return Call(kind, self._meters(cost), model, self._gated(features))
        for name in self._tools(body, features):
            cost[name] = 1
        images = _images(body.get("messages"))
        if images:
            features.add("images")
            cost["images"] = images
        output = _integer(body, "max_completion_tokens", 1, MAX_OUTPUT_TOKENS)
        output = output or _integer(body, "max_tokens", 1, MAX_OUTPUT_TOKENS)
        output = (output or self.profile.default_max_tokens) * (_integer(body, "n", 1, MAX_N) or 1)
        estimate = self.profile.estimator(body)
        if isinstance(estimate, bool) or not isinstance(estimate, int):
            raise TypeError(f"the prompt estimator must return an int, got {estimate!r}")
        prompt = min(max(0, estimate) + images * self.profile.image_tokens, MAX_SAFE // 2)
        cost["tokens"] = prompt + output
        if model is not None:
            price = self.catalog.price(model, prompt, output)
            if price:
                cost["credits"] = min(price, MAX_SAFE)
        return Call(kind, self._meters(cost), model, self._gated(features), stream, prompt, output)

    def _tools(self, body: dict[str, Any], features: set[str]) -> list[str]:
        """Native tool names (for the cost) of ``body["tools"]``; adds the features asked."""
        tools = body.get("tools")
        if tools is None:
            return []
        if not isinstance(tools, list):
            raise bad_request("'tools' must be an array", "invalid_type", "tools")
        native: list[str] = []
        for tool in tools:
            if not isinstance(tool, dict):
                raise bad_request("each tool must be an object", "invalid_type", "tools")
            kind = tool.get("type")
            if kind is not None and not isinstance(kind, str):
                raise bad_request("a tool's 'type' must be a string", "invalid_type", "tools")
            # OpenAI style {"type": "web_search"}; Gemini style {"google_search": {}}.
            names = (
                [kind] if kind is not None else [k for k in tool if k in self.profile.native_tools]
            )
            found = [self.profile.native_tools[n] for n in names if n in self.profile.native_tools]
            if not found:
                features.add("tools")
            for name in found:
                features.add(name)
                if name not in native:
                    native.append(name)
        return native

    def _meters(self, cost: dict[str, int]) -> dict[str, int]:
        return {name: amount for name, amount in cost.items() if name in self.known}

    def _gated(self, features: set[str]) -> frozenset[str]:
        return frozenset(
            f for f in features if f in self.named or self.catalog.meter_of(f) in self.named
        )


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _string(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(
                f"you must provide a '{name}' parameter", "missing_required_parameter", name
            )
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 256:
        raise bad_request(
            f"'{name}' must be a string of 1 to 256 characters, got {_show(value)}",
            "invalid_type",
            name,
        )
    return value


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise bad_request(f"'{name}' must be a boolean, got {_show(value)}", "invalid_type", name)
    return bool(value)


def _integer(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"'{name}' must be an integer, got {_show(value)}", "invalid_type", name)
    if not low <= value <= high:
        raise bad_request(
            f"'{name}' must be between {low} and {high}, got {_show(value)}",
            "invalid_value",
            name,
        )
    return value


def _images(messages: object) -> int:
    """Image content parts in ``messages`` (400 when messages is not an array of objects)."""
    if messages is None:
        return 0
    if not isinstance(messages, list):
        raise bad_request("'messages' must be an array", "invalid_type", "messages")
    count = 0
    for message in messages:
        if not isinstance(message, dict):
            raise bad_request("each message must be an object", "invalid_type", "messages")
        content = message.get("content")
        if isinstance(content, list):
            count += sum(
                1 for part in content if isinstance(part, dict) and part.get("type") in IMAGE_PARTS
            )
    return count
