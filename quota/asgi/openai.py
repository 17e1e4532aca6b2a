"""The ``openai`` profile: which endpoint a request is, and what it costs before it runs.

The route (``routes``) says which methods a path takes and what it charges on its own; the
body decides the rest, on every route: a ``model`` is gated, tools in every spelling
(``tools``) and media parts wherever they sit (``content``) are gated and charged, and the
tokens are estimated over every string of the body.

==============================================  ===============  ==============================
route (``/v1`` and a trailing slash optional)   kind             charged besides the body
==============================================  ===============  ==============================
``POST /chat/completions``                      chat             requests 1, output reserve
``POST /completions``, ``/generate``            generate         requests 1, output reserve
``POST /responses``                             responses        requests 1, output reserve
``POST /embeddings``, ``/moderations``          embeddings, ...  requests 1
``POST /audio/{speech,transcriptions,...}``     speech, audio    requests 1
``POST /images/{generations,edits,variations}`` images           requests 1, images n
``POST /web-extract``                           web_extract      requests 1, web_extract 1
``GET/HEAD /models[/...]``, ``/stats``, ...     free             nothing
any other path, any method                      other            requests 1, output reserve
==============================================  ===============  ==============================

Tokens are the prompt estimate plus the output reserve where the kind has one (the largest of
``max_completion_tokens``, ``max_tokens``, ``max_new_tokens``, ``max_output_tokens``, else
``default_max_tokens``; times ``n``); credits are ``catalog.price(model, prompt, reserve)``.
A catalog that names the meters ``input_tokens`` and ``output_tokens`` (beside or instead of
``tokens``) is charged each apart: the prompt estimate, and the output reserve.
Function tools ask for the feature ``tools``; native tools ask for their own feature and charge
1 on their meter through the catalog's aliases; media parts ask for ``images`` (audio, video
and files for their own feature when a plan names it, else ``images``). A feature no plan of
the catalog names is not gated, and a meter the catalog does not know is not charged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..algorithms import MAX_SAFE
from ..catalog import Catalog
from .content import Media, estimate_prompt_tokens, media_parts, scan
from .fields import check_messages, read_flag, read_integer, read_string
from .responses import ApiError, bad_request
from .routes import METHODS, ROUTES, Kind, allowed_methods, kind_of, model_in_path
from .tools import NATIVE_TOOLS, ToolReader

Estimator = Callable[[Mapping[str, Any]], int]
Unknown = Literal["charge", "free", "deny"]

MAX_OUTPUT_TOKENS = 2**31 - 1
MAX_N = 128
OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens", "max_new_tokens", "max_output_tokens")
#: kinds whose tokens include an output reserve (unknown routes too: they may generate)
RESERVING = frozenset({"chat", "generate", "responses", "other", "free"})
MEDIA_FEATURES = {"image": "images", "audio": "audio", "video": "video", "file": "files"}

__all__ = ["Call", "Classifier", "Kind", "OpenAIProfile", "estimate_prompt_tokens"]


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

    ``unknown``: what a path outside the route table costs: ``"charge"`` (default) one request
    plus what its body asks, ``"free"`` only what its body asks, ``"deny"`` a 404 (a closed
    surface). ``routes`` adds or overrides paths (``{"/my/chat": "chat"}``); ``native_tools``
    adds spellings of native tools (``{"bing_grounding": "google_search"}``).
    """

    name = "openai"

    def __init__(
        self,
        *,
        estimator: Estimator = estimate_prompt_tokens,
        default_max_tokens: int = 4096,
        image_tokens: int = 765,
        unknown: Unknown = "charge",
        routes: Mapping[str, Kind] | None = None,
        native_tools: Mapping[str, str] | None = None,
    ) -> None:
        if unknown not in ("charge", "free", "deny"):
            raise ValueError(f"unknown must be 'charge', 'free' or 'deny', got {unknown!r}")
        if not 0 < default_max_tokens <= MAX_OUTPUT_TOKENS or image_tokens < 0:
            raise ValueError("default_max_tokens must be positive and image_tokens not negative")
        self.estimator = estimator
        self.default_max_tokens = default_max_tokens
        self.image_tokens = image_tokens
        self.unknown = unknown
        self.routes: dict[str, Kind] = {**ROUTES}
        for path, kind in (routes or {}).items():
            if kind not in METHODS:
                raise ValueError(f"unknown route kind {kind!r} for {path!r}")
            self.routes["/" + path.strip("/")] = kind
        self.native_tools = {**NATIVE_TOOLS, **(native_tools or {})}

    def bind(self, catalog: Catalog) -> Classifier:
        return Classifier(self, catalog)


class Classifier:
    """The profile applied to one catalog: routes requests and prices their bodies."""

    def __init__(self, profile: OpenAIProfile, catalog: Catalog) -> None:
        self.profile = profile
        self.catalog = catalog
        # The catalog adds spellings: an alias it names (``bing_search = "search"``) is a
        # native tool charged on its meter; the profile's table wins where both name one.
        aliases = {name: name for name in catalog.meters.aliases}
        self.tools = ToolReader({**aliases, **profile.native_tools})
        self.known = catalog.meter_names | set(catalog.meters.aliases)
        #: input and output tokens metered apart (``tokens`` may be there too, or not)
        self.split = frozenset({"input_tokens", "output_tokens"} & catalog.meter_names)
        self.named = {f for plan in catalog.plans.values() for f in plan.features} - {"*"}
        self._canonical: dict[str, str] = {}
        self.model_ids = {
            name.lower(): name for name in catalog.models if not any(c in name for c in "*?[")
        }
        self.media = {
            kind: name if self._is_named(name) else "images"
            for kind, name in MEDIA_FEATURES.items()
        }

    def _is_named(self, feature: str) -> bool:
        return feature in self.named or self.catalog.meter_of(feature) in self.named

    # -- routing -----------------------------------------------------------------------------

    def route(self, method: str, path: str) -> Kind:
        """The kind of a request from its method and normalised path: 405 (with ``Allow``)
        for another method on a known route, 404 for an unknown one under ``unknown="deny"``."""
        kind = kind_of(path, self.profile.routes)
        if kind == "other":
            if self.profile.unknown == "deny":
                raise ApiError(404, f"no such endpoint: {path[:200]}", "unknown_route")
            return kind
        methods = allowed_methods(kind)
        if method not in methods:
            allow = ", ".join(methods)
            raise ApiError(
                405,
                f"method {method[:20]!r} is not allowed on {path[:200]}; allowed: {allow}",
                "method_not_allowed",
                headers={"Allow": allow},
            )
        return kind

    def empty(self, kind: Kind) -> Call:
        """The call of a request without a body."""
        if not self._charges_request(kind):
            return Call(kind)
        return Call(kind, self._meters({"requests": 1}))

    def _charges_request(self, kind: Kind) -> bool:
        """Whether a route of ``kind`` costs one request of its own."""
        return kind != "free" and (kind != "other" or self.profile.unknown != "free")

    # -- bodies ------------------------------------------------------------------------------

    def classify(
        self,
        kind: Kind,
        body: object,
        extra: Media | None = None,
        opaque: int = 0,
        path: str = "",
    ) -> Call:
        """Validate a parsed body of a ``kind`` route and estimate its cost (400s).

        ``extra``: media found outside the parsed fields (multipart files, an opaque body);
        ``opaque``: characters of content no walk could read (counted as text); ``path``:
        where a model may be named too (Gemini-style ``/models/<id>:generateContent``)."""
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object", "invalid_request_body")
        model = self._model(body, kind, path)
        stream = read_flag(body, "stream")
        check_messages(body)
        features, native = self.tools.read(body)
        cost = {"requests": 1} if self._charges_request(kind) else {}
        cost.update(dict.fromkeys(native, 1))
        estimate, media = self._scan(body)
        if extra:
            media.update(extra)
        n = read_integer(body, "n", 1, MAX_N) or 1
        if kind == "images":
            cost["images"] = n
            features.add("images")
        elif kind == "web_extract":
            cost["web_extract"] = 1
        elif kind in ("speech", "audio"):  # audio in or out: not text
            features.add(self.media["audio"])
        features.update(self.media[k] for k in media)
        output = self._reserve(body, n) if kind in RESERVING else 0
        prompt = estimate + -(-opaque // 4) + sum(media.values()) * self.profile.image_tokens
        prompt = min(prompt, MAX_SAFE // 2)
        if kind != "web_extract":  # priced by its own meter: a URL is no prompt
            cost.update(self._tokens(kind, prompt, output))
        if model is not None:
            price = self.catalog.price(model, prompt, output)
            if price:
                cost["credits"] = min(price, MAX_SAFE)
        return Call(kind, self._meters(cost), model, self._gated(features), stream, prompt, output)

    def _tokens(self, kind: Kind, prompt: int, output: int) -> dict[str, int]:
        """The token meters of a priced body: ``tokens`` (prompt + output reserve), and where
        the catalog has them as meters of their own (not aliases: one amount must not feed a
        meter twice), ``input_tokens`` (the prompt) and ``output_tokens`` (the reserve, on
        kinds that generate)."""
        tokens = {"tokens": prompt + output}
        if "input_tokens" in self.split:
            tokens["input_tokens"] = prompt
        if "output_tokens" in self.split and kind in RESERVING:
            tokens["output_tokens"] = output
        return tokens

    def _scan(self, body: dict[str, Any]) -> tuple[int, Media]:
        """(prompt estimate, media parts): one walk with the default estimator."""
        estimator = self.profile.estimator
        if estimator is estimate_prompt_tokens:
            return scan(body)
        estimate = estimator(body)
        if isinstance(estimate, bool) or not isinstance(estimate, int):
            raise TypeError(f"the prompt estimator must return an int, got {estimate!r}")
        return max(0, estimate), media_parts(body)

    def _model(self, body: dict[str, Any], kind: Kind, path: str) -> str | None:
        """The model a request names, in the body or (unknown routes) the path, as the
        catalog spells it; 400 when the two differ."""
        named = read_string(body, "model", required=kind == "chat")
        in_path = model_in_path(path) if kind == "other" else None
        both = named is not None and in_path is not None
        if both and self.canonical_model(named or "") != self.canonical_model(in_path or ""):
            raise bad_request(
                "the model in the path and the model in the body differ", "model_mismatch", "model"
            )
        model = named if named is not None else in_path
        return None if model is None else self.canonical_model(model)

    def canonical_model(self, model: str) -> str:
        """``model`` as the catalog names it: an upstream that ignores case, a provider prefix
        (``openai/gpt-5.5``, ``models/...``) or a tag (``:latest``) serves the model the
        catalog prices, so it is gated and priced as that one. Cached (bounded)."""
        known = self._canonical.get(model)
        if known is None:
            if len(self._canonical) >= 4096:
                self._canonical.clear()
            known = self._canonical[model] = self._canonical_of(model)
        return known

    def _canonical_of(self, model: str) -> str:
        if self.catalog.model_info(model) is not None:
            return model
        short = model.strip().lower().rsplit("/", 1)[-1].split(":", 1)[0]
        if short in self.model_ids:
            return self.model_ids[short]
        return short if self.catalog.model_info(short) is not None else model

    def _reserve(self, body: dict[str, Any], n: int) -> int:
        """The output reserve: the largest cap the body names (any spelling), times ``n``."""
        given = [
            read_integer(body, name, 1, MAX_OUTPUT_TOKENS) or 0
            for name in OUTPUT_FIELDS
            if name in body
        ]
        return (max(given, default=0) or self.profile.default_max_tokens) * n

    def _meters(self, cost: dict[str, int]) -> dict[str, int]:
        return {name: amount for name, amount in cost.items() if name in self.known}

    def _gated(self, features: set[str]) -> frozenset[str]:
        return frozenset(f for f in features if self._is_named(f))
