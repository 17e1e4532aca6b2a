"""The routes the ``openai`` profile knows: which kind each path is, and the methods it takes.

A request on a known path with another method is answered 405 with ``Allow``; every other path
is an ``unknown`` route, priced from its body (see ``profile``). Paths are matched after the
middleware normalised them (``paths``), without the ``/v1`` prefix and a trailing slash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

Kind = Literal[
    "chat",
    "generate",
    "responses",
    "embeddings",
    "images",
    "audio",
    "speech",
    "moderations",
    "web_extract",
    "free",
    "other",
]

POST = ("POST",)
READ = ("GET", "HEAD")

#: path (no ``/v1``, no trailing slash) -> kind
ROUTES: dict[str, Kind] = {
    "/chat/completions": "chat",
    "/completions": "generate",
    "/generate": "generate",
    "/responses": "responses",
    "/embeddings": "embeddings",
    "/images/generations": "images",
    "/images/edits": "images",
    "/images/variations": "images",
    "/audio/transcriptions": "audio",
    "/audio/translations": "audio",
    "/audio/speech": "speech",
    "/moderations": "moderations",
    "/web-extract": "web_extract",
    "/models": "free",
    "/stats": "free",
    "/validate": "free",
}

#: the methods each kind answers (HEAD wherever GET is)
METHODS: dict[Kind, tuple[str, ...]] = {
    "chat": POST,
    "generate": POST,
    "responses": POST,
    "embeddings": POST,
    "images": POST,
    "audio": POST,
    "speech": POST,
    "moderations": POST,
    "web_extract": POST,
    "free": READ,
    "other": (),
}


def route_key(path: str) -> str:
    """The table key of a normalised path: no trailing slash, no ``/v1`` prefix, lower case,
    no ``;parameters`` (an app that ignores case or strips parameters serves the same route,
    so it is priced as that route)."""
    if ";" in path:
        path = "/".join(segment.split(";", 1)[0] for segment in path.split("/"))
    path = path.lower().rstrip("/") or "/"
    if path == "/v1":
        return "/"
    return path[3:] if path.startswith("/v1/") else path


def kind_of(path: str, routes: Mapping[str, Kind] = ROUTES) -> Kind:
    """The kind of a normalised path; ``other`` when it is not a known route."""
    key = route_key(path)
    kind = routes.get(key)
    if kind is None and key.startswith("/models/"):
        return "free"
    return kind if kind is not None else "other"


def allowed_methods(kind: Kind) -> tuple[str, ...]:
    """The methods a kind answers; empty for ``other`` (any method)."""
    return METHODS[kind]


_MODEL_IN_PATH = re.compile(r"/models/([^/:]+):[A-Za-z]+$")


def model_in_path(path: str) -> str | None:
    """The model a Gemini-style path names (``/v1beta/models/<id>:generateContent``)."""
    found = _MODEL_IN_PATH.search(path)
    return found.group(1) if found else None
