"""What the stand-in upstream answers on its routes that generate no text: embeddings,
moderations, images and web-extract. Pure functions of the request body (ids and timestamps
aside), used by ``upstream``; the text routes' answers are in ``upstream_replies``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
import uuid
from typing import Any

from ..asgi import estimate_prompt_tokens
from .upstream_replies import BadRequest, Json

#: The categories of a moderation result, as OpenAI names them.
_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
#: A 1x1 transparent PNG, for ``response_format: "b64_json"``.
_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAA"
    "AABJRU5ErkJggg=="
)


def _inputs(body: Json) -> list[Any]:
    """``input`` as a list of inputs: a string, a token array, or a list of either."""
    value = body.get("input")
    if value is None or value == "" or value == []:
        raise BadRequest("'input' is required")
    tokens = isinstance(value, list) and all(isinstance(v, int) for v in value)
    return value if isinstance(value, list) and not tokens else [value]


def embeddings(body: Json) -> Json:
    """A small deterministic vector per input (``dimensions`` of them, default 8, at most 64;
    base64 little-endian float32 with ``encoding_format: "base64"``), with ``usage``."""
    dims = body.get("dimensions")
    dims = dims if isinstance(dims, int) and not isinstance(dims, bool) and 0 < dims <= 64 else 8
    base64_out = body.get("encoding_format") == "base64"
    data: list[Json] = []
    for i, item in enumerate(_inputs(body)):
        seed = json.dumps(item, sort_keys=True).encode()
        vector = [round(b / 127.5 - 1, 4) for b in hashlib.blake2b(seed, digest_size=dims).digest()]
        packed = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append(
            {"object": "embedding", "index": i, "embedding": packed if base64_out else vector}
        )
    model = body.get("model") if isinstance(body.get("model"), str) else "stand-in-embedding"
    tokens = estimate_prompt_tokens(body)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}


def moderations(body: Json) -> Json:
    """A result per input, nothing flagged."""
    result = {
        "flagged": False,
        "categories": dict.fromkeys(_CATEGORIES, False),
        "category_scores": dict.fromkeys(_CATEGORIES, 0.0001),
        "category_applied_input_types": {c: ["text"] for c in _CATEGORIES},
    }
    model = body.get("model") if isinstance(body.get("model"), str) else "omni-moderation-latest"
    results = [result for _ in _inputs(body)]
    return {"id": f"modr-{uuid.uuid4().hex[:24]}", "model": model, "results": results}


def images(body: Json) -> Json:
    """``n`` images (1 to 10): URLs, or a tiny PNG with ``response_format: "b64_json"``."""
    n = body.get("n")
    n = min(n, 10) if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
    b64 = body.get("response_format") == "b64_json"
    data = [
        {"b64_json": _PNG} if b64 else {"url": f"https://images.invalid/{i}.png"} for i in range(n)
    ]
    return {"created": int(time.time()), "data": data}


def web_extract(body: Json) -> Json:
    url = body.get("url")
    page = f"Stand-in content of {url}." if isinstance(url, str) else "Stand-in content."
    return {"url": url, "title": "Stand-in page", "content": page}
