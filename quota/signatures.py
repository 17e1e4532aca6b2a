"""Webhook signatures: ``X-Quota-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``
beside ``X-Quota-Timestamp: <epoch seconds>``. ``sign`` is the sender's half, ``verify`` the
receiver's (constant-time, and a timestamp too far from the receiver's clock is refused: a
replayed request goes stale)."""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["SIGNATURE", "TIMESTAMP", "sign", "verify"]

SIGNATURE = "X-Quota-Signature"
TIMESTAMP = "X-Quota-Timestamp"


def sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The ``X-Quota-Signature`` value of ``body`` sent at ``timestamp``."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(
    secret: str | bytes,
    body: bytes,
    timestamp: str | int,
    signature: str,
    tolerance: float = 300,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` is the sender's for ``body`` at ``timestamp`` (the two headers,
    as received), and the timestamp is within ``tolerance`` seconds of ``now`` (default:
    the clock). Compared in constant time."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, ts), signature)
