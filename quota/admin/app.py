"""``AdminApp``: the admin API and the dashboard as one pure ASGI app, mountable anywhere.

Routes (relative to where it is mounted; ``quota serve`` mounts it at ``/admin``):

- ``GET /`` and ``GET /accounts/{account}``: the dashboard (HTML);
- ``GET /openapi.json``: the OpenAPI document of everything here;
- ``/api/accounts[...]``: the JSON API (``quota.admin.api``).

Every request needs an admin token (``quota.admin.auth``). Lifespan messages are answered
(nothing to start), so the app also runs on its own under uvicorn.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from html import escape
from typing import Any
from urllib.parse import urlencode

from ..asgi.types import Receive, Scope, Send
from ..limiter import AsyncLimiter, Limiter
from .accounts import Accounts
from .api import Api, usage_csv
from .auth import Tokens, set_cookie
from .dashboard import account_page, index_page, login_page
from .http import HttpError, Request, redirect, send_bytes, send_error, send_json
from .openapi import document

Handler = Callable[[Request, dict[str, str], str], Awaitable[tuple[int, Any]]]
HTML = "text/html; charset=utf-8"
_ACCOUNT = r"(?P<account>[^/]+)"


class AdminApp:
    """The admin API and dashboard over one limiter (see ``quota.admin.app``)."""

    def __init__(self, limiter: AsyncLimiter | Limiter, tokens: Tokens, accounts: Accounts) -> None:
        self.limiter = limiter
        self.tokens = tokens
        self.accounts = accounts
        self.api = Api(limiter, accounts)
        self.openapi = document(limiter.catalog)
        table: tuple[tuple[str, dict[str, Handler]], ...] = (
            (r"/api/accounts", {"GET": self._nearest}),
            (rf"/api/accounts/{_ACCOUNT}", {"GET": self._account}),
            (rf"/api/accounts/{_ACCOUNT}/usage", {"GET": self._usage}),
            (rf"/api/accounts/{_ACCOUNT}/top-up", {"POST": self._top_up}),
            (rf"/api/accounts/{_ACCOUNT}/reset", {"POST": self._reset}),
            (
                rf"/api/accounts/{_ACCOUNT}/overrides",
                {"GET": self._overrides, "DELETE": self._clear_all},
            ),
            (
                rf"/api/accounts/{_ACCOUNT}/overrides/(?P<limit>[^/]+)",
                {"PUT": self._set_override, "DELETE": self._clear_one},
            ),
            (r"/openapi.json", {"GET": self._document}),
        )
        self.routes = [(re.compile(p), h) for p, h in table]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets: nothing here speaks them
            await send({"type": "websocket.close", "code": 1008})
            return
        request = Request(scope, receive)
        if request.method in ("GET", "HEAD") and (
            request.path in ("/", "") or request.path.startswith("/accounts/")
        ):
            await self._page(request, send)
            return
        try:
            await self._dispatch(request, send)
        except HttpError as error:
            await send_error(send, error)

    async def _dispatch(self, request: Request, send: Send) -> None:
        by = f"{self.tokens.check(request)}@{request.client}"  # before anything is said
        for pattern, methods in self.routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            handler = methods.get(request.method)
            if handler is None:
                allow = ", ".join(methods)
                raise HttpError(
                    405, f"use {allow} here", "method_not_allowed", headers={"Allow": allow}
                )
            status, payload = await handler(request, match.groupdict(), by)
            if isinstance(payload, str):
                await send_bytes(send, status, payload.encode(), "text/csv; charset=utf-8")
            else:
                await send_json(send, status, payload)
            return
        raise HttpError(404, f"no admin route {request.path!r}", "not_found")

    # -- the JSON API ----------------------------------------------------------------------

    async def _document(self, request: Request, params: dict[str, str], by: str) -> tuple[int, Any]:
        return 200, self.openapi

    async def _nearest(self, request: Request, params: dict[str, str], by: str) -> tuple[int, Any]:
        count = _int_arg(request, "count", 20, 1, 1000)
        return 200, {"object": "list", "accounts": await self.api.nearest(count)}

    async def _account(self, request: Request, params: dict[str, str], by: str) -> tuple[int, Any]:
        who = await self.accounts.principal(params["account"], request)
        return 200, await self.api.account(who)

    async def _usage(self, request: Request, params: dict[str, str], by: str) -> tuple[int, Any]:
        who = await self.accounts.principal(params["account"], request)
        kept = self.limiter.catalog.usage.history_days
        days = _int_arg(request, "days", min(30, kept) or 1, 1, max(kept, 1))
        form = request.arg("format") or "json"
        if form not in ("json", "csv"):
            raise HttpError(422, "format must be json or csv", "invalid_format", param="format")
        usage = await self.api.usage(who, days)
        return 200, usage_csv(usage) if form == "csv" else usage

    async def _top_up(self, request: Request, params: dict[str, str], by: str) -> tuple[int, Any]:
        body = await request.json_object()
        who = await self.accounts.principal(params["account"], request)
        return 200, await self.api.top_up(who, body, by)

    async def _reset(self, request: Request, params: dict[str, str], by: str) -> tuple[int, Any]:
        body = await request.json_object()
        who = await self.accounts.principal(params["account"], request)
        return 200, await self.api.reset(who, body, by)

    async def _overrides(
        self, request: Request, params: dict[str, str], by: str
    ) -> tuple[int, Any]:
        who = await self.accounts.principal(params["account"], request)
        return 200, self.api.overrides(who)

    async def _set_override(
        self, request: Request, params: dict[str, str], by: str
    ) -> tuple[int, Any]:
        body = await request.json_object()
        who = await self.accounts.principal(params["account"], request)
        return 200, await self.api.set_override(who, params["limit"], body, by)

    async def _clear_all(
        self, request: Request, params: dict[str, str], by: str
    ) -> tuple[int, Any]:
        who = await self.accounts.principal(params["account"], request)
        return 200, await self.api.clear_override(who, None, by)

    async def _clear_one(
        self, request: Request, params: dict[str, str], by: str
    ) -> tuple[int, Any]:
        who = await self.accounts.principal(params["account"], request)
        return 200, await self.api.clear_override(who, params["limit"], by)

    # -- the dashboard ---------------------------------------------------------------------

    async def _page(self, request: Request, send: Send) -> None:
        """A dashboard page; ``?token=`` logs in (cookie, then 303 without the token)."""
        token = request.arg("token")
        if token is not None:
            label = self.tokens.label_of(token)
            if label is not None:
                kept = urlencode([(k, v) for k, v in request.query if k != "token"])
                where = (request.root or "") + (request.path or "/") + (f"?{kept}" if kept else "")
                cookie = set_cookie(self.tokens.cookie_for(label), request.root or "/")
                await redirect(send, where, {"Set-Cookie": cookie})
                return
        try:
            self.tokens.check(request)
            nonce = secrets.token_urlsafe(16)
            if request.path in ("/", ""):
                rows = await self.api.nearest(50)
                html = index_page(rows, request.root, nonce)
            else:
                account = request.path.removeprefix("/accounts/")
                if not account or "/" in account:
                    raise HttpError(404, f"no page {request.path!r}", "not_found")
                who = await self.accounts.principal(account, request)
                query = urlencode([(k, v) for k, v in request.query if k != "token"])
                html = account_page(await self.api.account(who), request.root, query, nonce)
        except HttpError as error:
            body = login_page(request.root) if error.status == 401 else _error_page(error)
            await send_bytes(send, error.status, body, HTML, error.headers)
            return
        await send_bytes(send, 200, html, HTML, {"Content-Security-Policy": _csp(nonce)})


def _csp(nonce: str) -> str:
    """Scripts and styles of this page only; requests to this origin only."""
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}';"
        " connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none';"
        " frame-ancestors 'none'"
    )


def _error_page(error: HttpError) -> bytes:
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{error.status}"
        f"</title></head><body><h1>{error.status}</h1><p>{escape(error.message)}</p></body></html>\n"
    ).encode()


def _int_arg(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.arg(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise HttpError(
            422, f"{name} must be an integer from {low} to {high}", "invalid_" + name, param=name
        )
    return int(text)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
