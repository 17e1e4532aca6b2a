"""Storage names for a principal's state: short keyed hashes, never raw ids or API keys.

One account's state lives under one *slot* (a Redis hash tag), so a decision over every
per-account and per-key limit touches one slot; ``global`` limits share the slot ``"g"``, and
the limits scoped to a group of the catalog's (``org``, ``team``...) share their group's slot
(``group_slot``): one per (kind, name), so every account of one org counts against one state.

The hashes are keyed by a secret (``Limiter(secret=...)``; ``secret_from_env`` reads one from
the environment), so someone who can read Redis cannot test guessed account ids or API keys
against the names. ``quota.rotate.rotate_secret`` moves stored state to a new secret.
"""

from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache

from .errors import ConfigError, CostError

DEFAULT_SECRET = b"quota:v1"
ENV_SECRET = "QUOTA_SECRET"
MIN_SECRET = 16  # bytes a secret from configuration needs at least


def _hash_key(secret: bytes | str) -> bytes:
    """BLAKE2b's key: the secret itself up to 64 bytes, else a 64-byte hash of it."""
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    return raw if len(raw) <= 64 else hashlib.blake2b(raw).digest()


@lru_cache(maxsize=65_536)
def digest(value: str, secret: bytes = DEFAULT_SECRET) -> str:
    """A 16-character keyed hash (BLAKE2b, 96 bits), URL-safe and free of braces."""
    raw = hashlib.blake2b(value.encode("utf-8"), digest_size=12, key=_hash_key(secret)).digest()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def account_slot(account: str, secret: bytes = DEFAULT_SECRET) -> str:
    """The slot of one account's state."""
    return "a" + digest(account, secret)


GLOBAL_SLOT = "g"


def group_slot(kind: str, name: str, secret: bytes = DEFAULT_SECRET) -> str:
    """The slot of one group's shared state: kind and name hashed together (``org:acme`` and
    ``team:acme`` are two groups), prefixed ``o`` so it never meets an account's slot."""
    return "o" + digest(f"{kind}:{name}", secret)


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


def secret_from_env(name: str = ENV_SECRET) -> bytes:
    """The hashing secret from the environment variable ``name`` (``QUOTA_SECRET`` by
    default): ``Limiter(catalog, url, secret=quota.keys.secret_from_env())``. At least 16
    bytes; give every gateway of a deployment the same one."""
    value = os.environ.get(name)
    if value is None:
        raise ConfigError(f"the hashing secret is not set: export {name}=<at least 16 bytes>")
    return checked_secret(value, name)


def checked_secret(value: str, source: str) -> bytes:
    """``value`` as a hashing secret, or a ConfigError naming ``source`` (an environment
    variable, a command-line option) when it is shorter than 16 bytes. The message never
    quotes the value: a secret does not belong on a terminal or in a log."""
    secret = value.encode("utf-8")
    if len(secret) < MIN_SECRET:
        raise ConfigError(f"{source} is too short ({len(secret)} bytes): give {MIN_SECRET} or more")
    return secret
