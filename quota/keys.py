"""Storage names for a principal's state: short keyed hashes, never raw ids or API keys.

One account's state lives under one *slot* (a Redis hash tag), so a decision over every
per-account and per-key limit touches one slot; ``global`` limits share the slot ``"g"``.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from .errors import CostError

DEFAULT_SECRET = b"quota:v1"


@lru_cache(maxsize=65_536)
def digest(value: str, secret: bytes = DEFAULT_SECRET) -> str:
    """A 16-character keyed hash (BLAKE2b, 96 bits), URL-safe and free of braces."""
    raw = hashlib.blake2b(value.encode("utf-8"), digest_size=12, key=secret).digest()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def account_slot(account: str, secret: bytes = DEFAULT_SECRET) -> str:
    """The slot of one account's state."""
    return "a" + digest(account, secret)


GLOBAL_SLOT = "g"


def field_name(limit_name: str, scope: str, key: str | None, secret: bytes = DEFAULT_SECRET) -> str:
    """The field of one limit inside its slot; per-key limits carry the key's hash."""
    if scope == "key":
        if key is None:
            raise CostError(
                f"limit {limit_name!r} is per API key but the principal has no key: give"
                " Principal(key=...)"
            )
        return f"{limit_name}/{digest(key, secret)}"
    return limit_name
