"""ASGI integration: ``QuotaMiddleware`` and the ``openai`` profile (standard library only)."""

from __future__ import annotations

from .identity import KeyCache, extract_key
from .middleware import QuotaInfo, QuotaMiddleware
from .openai import Call, OpenAIProfile, estimate_prompt_tokens
from .reader import UsageReader

__all__ = [
    "Call",
    "KeyCache",
    "OpenAIProfile",
    "QuotaInfo",
    "QuotaMiddleware",
    "UsageReader",
    "estimate_prompt_tokens",
    "extract_key",
]
