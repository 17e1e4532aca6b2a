"""Pydantic's validation errors, worded for people who write plan files: each names its plan,
its limit (by name, else by position) and its field."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .errors import CatalogError


def invalid(exc: ValidationError, data: dict[str, Any], where: str) -> CatalogError:
    """The CatalogError for a catalog that failed validation: one line per error, each naming
    its plan, limit and field."""
    lines = [_describe(err, data) for err in exc.errors()]
    return CatalogError(f"{where} is invalid:\n" + "\n".join(f"  - {x}" for x in lines))


def _describe(err: Any, data: dict[str, Any]) -> str:
    """One error as 'plan 'basic', limit 'rpm', field 'rate': message'."""
    loc = list(err["loc"])
    parts: list[str] = []
    node: Any = data
    i = 0
    while i < len(loc):
        key = loc[i]
        if key == "plans" and i + 1 < len(loc):
            parts.append(f"plan {loc[i + 1]!r}")
            node = _get(_get(node, "plans"), loc[i + 1])
            i += 2
            continue
        if key == "limits" and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            item = _get(_get(node, "limits"), loc[i + 1])
            name = item.get("name") if isinstance(item, dict) else None
            parts.append(f"limit {name!r}" if name else f"limit #{loc[i + 1] + 1}")
            node = item
            i += 2
            continue
        if isinstance(key, str) and not key.startswith(("function-", "model")):
            parts.append(f"field {'.'.join(str(k) for k in loc[i:])!r}")
            break
        i += 1
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field (check its spelling)"
    elif err["type"] == "missing":
        msg = "required field is missing"
    return f"{', '.join(parts)}: {msg}" if parts else msg


def _get(node: Any, key: Any) -> Any:
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    return None
