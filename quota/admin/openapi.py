"""The admin API's OpenAPI 3.0 document, written by hand and filled in from the catalog (its
plans, limit names, balance meters and history length), served at ``/openapi.json``.

Every route, parameter and answer is described, errors included (the same ``Error`` object
everywhere), so a client generator or a fuzzer (the tests run schemathesis on it) knows the
whole surface.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..catalog import Catalog
from .schemas import ref as _ref
from .schemas import schemas

JSON = dict[str, Any]


def _json(schema: JSON, description: str) -> JSON:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": "the body is not a JSON object",
    "401": "no admin token, or a wrong one",
    "404": "an account nobody knows (give its plan in the query)",
    "413": "the body is too large",
    "422": "a bad field, principal, meter, amount or override (the library's own words)",
    "503": "the quota store is unavailable",
}


def _responses(ok: JSON, *codes: str) -> JSON:
    out: JSON = {"200": ok}
    for code in codes:
        out[code] = _json(_ref("Error"), ERRORS[code])
    return out


def _parameters(catalog: Catalog) -> JSON:
    limits = sorted({lim.name for p in catalog.plans.values() for lim in p.limits})
    query = {"in": "query", "required": False}
    return {
        "account": {"name": "account", "in": "path", "required": True,
                    "schema": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
                    "example": "acct_42", "description": "the account id"},
        "plan": {**query, "name": "plan", "schema": {"type": "string", "enum": list(catalog.plans)},
                 "description": "the account's plan, when the resolver does not know it"},
        "key": {**query, "name": "key", "schema": {"type": "string"},
                "description": "an API key of the account (its per-key limits)"},
        "group": {**query, "name": "group", "style": "form", "explode": True,
                  "schema": {"type": "array", "items": {"type": "string", "pattern": "^[^=]+=.+$"}},
                  "description": "a group of the account, KIND=NAME (repeatable)"},
        "cycle_start": {**query, "name": "cycle_start",
                        "schema": {"type": "string", "format": "date-time"},
                        "description": "billing-cycle anchor / trial start"},
        "limit": {"name": "limit", "in": "path", "required": True,
                  "schema": {"type": "string", "enum": limits}, "description": "a limit name"},
    }  # fmt: skip


PRINCIPAL = ["account", "plan", "key", "group", "cycle_start"]


def _params(*names: str) -> list[JSON]:
    return [{"$ref": f"#/components/parameters/{n}"} for n in names]


def body(name: str) -> JSON:
    """A required JSON request body of schema ``name``."""
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


def _paths(catalog: Catalog) -> JSON:
    days = max(catalog.usage.history_days, 1)
    common = ("401", "404", "422", "503")
    changes = ("400", "401", "404", "413", "422", "503")
    overrides_ok = _json(_ref("Overrides"), "the account's overrides after the change")
    return {
        "/api/accounts": {"get": {
            "summary": "the known accounts, nearest their caps first",
            "parameters": [{"name": "count", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
            "responses": _responses(_json(_ref("Nearest"), "accounts"), "401", "422", "503"),
        }},
        "/api/accounts/{account}": {"get": {
            "summary": "the account's limits (used, left, reset), balances and recent history",
            "parameters": _params(*PRINCIPAL),
            "responses": _responses(_json(_ref("Account"), "the account"), *common),
        }},
        "/api/accounts/{account}/usage": {"get": {
            "summary": "daily totals per meter, oldest day first (JSON or CSV)",
            "parameters": [*_params(*PRINCIPAL),
                {"name": "days", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": days}},
                {"name": "format", "in": "query", "required": False,
                 "schema": {"type": "string", "enum": ["json", "csv"]}}],
            "responses": _responses({"description": "{day: {meter: amount}}, or CSV", "content": {
                "application/json": {"schema": _ref("Daily")},
                "text/csv": {"schema": {"type": "string"}}}}, *common),
        }},
        "/api/accounts/{account}/top-up": {"post": {
            "summary": "add to a prepaid balance", "parameters": _params(*PRINCIPAL),
            "requestBody": body("TopUp"),
            "responses": _responses(_json(_ref("TopUpResult"), "the new balance"), *changes),
        }},
        "/api/accounts/{account}/reset": {"post": {
            "summary": "forget the account's usage (balances and groups only when asked)",
            "parameters": _params(*PRINCIPAL),
            "requestBody": {**body("Reset"), "required": False},
            "responses": _responses(_json(_ref("ResetResult"), "done"), *changes),
        }},
        "/api/accounts/{account}/overrides": {
            "get": {"summary": "the account's overrides", "parameters": _params(*PRINCIPAL),
                    "responses": _responses(_json(_ref("Overrides"), "overrides"), *common)},
            "delete": {"summary": "clear every override the admin app set",
                       "parameters": _params(*PRINCIPAL),
                       "responses": _responses(overrides_ok, *common)},
        },
        "/api/accounts/{account}/overrides/{limit}": {
            "put": {"summary": "set one limit's override (checked as a plan file is)",
                    "parameters": _params(*PRINCIPAL, "limit"),
                    "requestBody": body("OverrideValue"),
                    "responses": _responses(overrides_ok, *changes)},
            "delete": {"summary": "clear one limit's override",
                       "parameters": _params(*PRINCIPAL, "limit"),
                       "responses": _responses(overrides_ok, *common)},
        },
    }  # fmt: skip


def _pages() -> JSON:
    """The dashboard's pages and this document: HTML (errors too) and JSON."""
    html = {"text/html": {"schema": {"type": "string"}}}

    def page(what: str) -> JSON:
        return {"description": what, "content": html}

    login = {
        "name": "token",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "the admin token, once: sets the dashboard's cookie, then 303",
    }
    every = {
        "name": "refresh",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 3600},
        "description": "seconds between the script's refreshes (default 5)",
    }
    errors = {
        "401": page("no admin token or cookie: how to log in"),
        "404": page("an account nobody knows"),
        "422": page("a bad principal"),
        "503": page("the quota store is unavailable"),
    }
    redirect = {"description": "logged in: the cookie is set, the token leaves the address"}
    return {
        "/": {"get": {
            "summary": "dashboard: the known accounts, nearest their caps first",
            "parameters": [login, every], "responses": {
                "200": page("the page"), "303": redirect, "401": errors["401"],
                "503": errors["503"]}}},
        "/accounts/{account}": {"get": {
            "summary": "dashboard: one account's gauges, balance and daily chart",
            "parameters": [*_params(*PRINCIPAL), login, every], "responses": {
                "200": page("the page"), "303": redirect, **errors}}},
        "/openapi.json": {"get": {
            "summary": "this document", "responses": {
                "200": _json({"type": "object"}, "the OpenAPI document"),
                "401": _json(_ref("Error"), ERRORS["401"])}}},
    }  # fmt: skip


def document(catalog: Catalog) -> JSON:
    """The OpenAPI 3.0.3 document of the admin API for ``catalog``."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "quota admin API",
            "version": __version__,
            "description": f"Accounts of catalog {catalog.name!r}: read, top up, reset, override.",
        },
        "security": [{"bearer": []}],
        "paths": {**_pages(), **_paths(catalog)},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(catalog),
            "parameters": _parameters(catalog),
        },
    }
