"""Who may use the admin app: bearer tokens, each with a label that the log names.

``token`` is one string (labelled ``"admin"``) or a mapping ``{label: token}`` (one token per
operator or robot, so the log says who did what). Every request needs one:

- ``Authorization: Bearer <token>``: every route, changes included;
- the dashboard's cookie, for reading only (GET): ``GET <mount>/?token=<token>`` checks the
  token, sets an HttpOnly, SameSite=Strict cookie scoped to the mount path, and redirects to
  the same page without the token in its address. The cookie holds an HMAC of the token, not
  the token itself. It never authorises a change: a change needs the bearer header, so a page
  of another site cannot make a browser change anything (CSRF), even with the cookie.

Comparisons are constant-time (``hmac.compare_digest``) over every configured token.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from ..errors import ConfigError
from .http import HttpError, Request

#: The dashboard's cookie.
COOKIE = "quota_admin"
#: Tokens shorter than this are refused when the app is built: a guessable token is no lock.
MIN_TOKEN = 16


def unauthorized(message: str) -> HttpError:
    return HttpError(
        401, message, "invalid_admin_token", headers={"WWW-Authenticate": 'Bearer realm="admin"'}
    )


class Tokens:
    """The admin tokens by label, checked in constant time."""

    def __init__(self, token: str | Mapping[str, str]) -> None:
        tokens = {"admin": token} if isinstance(token, str) else dict(token)
        if not tokens:
            raise ConfigError("the admin app needs a token")
        for label, value in tokens.items():
            if not isinstance(value, str) or len(value) < MIN_TOKEN:
                raise ConfigError(
                    f"admin token {label!r} must be a string of at least {MIN_TOKEN} characters"
                )
            if not value.isascii() or not value.isprintable() or " " in value:
                raise ConfigError(f"admin token {label!r} must be visible ASCII characters")
        self._tokens = {label: value.encode() for label, value in tokens.items()}
        self._cookies = {label: cookie_value(value) for label, value in self._tokens.items()}

    def label_of(self, token: str) -> str | None:
        """The label of ``token``, None when it is none of them. Every token is compared (no
        early exit), so the time taken says nothing about which one came close."""
        return _find(self._tokens, token.encode("utf-8", "surrogateescape"))

    def cookie_for(self, label: str) -> str:
        return self._cookies[label].decode()

    def check(self, request: Request) -> str:
        """The label of the request's credentials; 401 without valid ones. The cookie counts
        for GET and HEAD only."""
        auth = request.headers.get("authorization")
        if auth is not None:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise unauthorized("the Authorization header must be 'Bearer <admin token>'")
            label = self.label_of(token.strip())
            if label is None:
                raise unauthorized("the admin token is not valid")
            return label
        cookie = _cookie(request.headers.get("cookie", ""))
        if cookie is not None and request.method in ("GET", "HEAD"):
            label = _find(self._cookies, cookie.encode("utf-8", "surrogateescape"))
            if label is not None:
                return label
        raise unauthorized("this needs the admin token: Authorization: Bearer <admin token>")


def cookie_value(token: bytes) -> bytes:
    """What the dashboard's cookie holds for ``token``: an HMAC of it, never the token."""
    return hmac.new(token, b"quota-admin-dashboard", hashlib.sha256).hexdigest().encode()


def _find(table: Mapping[str, bytes], given: bytes) -> str | None:
    found = None
    for label, value in table.items():
        if hmac.compare_digest(value, given) and found is None:
            found = label
    return found


def _cookie(header: str) -> str | None:
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


def set_cookie(value: str, path: str) -> str:
    """The ``Set-Cookie`` header of the dashboard's session, scoped to the mount path."""
    return f"{COOKIE}={value}; Path={path or '/'}; HttpOnly; SameSite=Strict"
