"""Typed reads of a request body's fields: each wrong type or range is a 400 naming the field."""

from __future__ import annotations

from typing import Any

from .responses import bad_request


def _show(value: object) -> str:
    """A short repr of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_string(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    """A string field of 1 to 256 characters, or None when absent (400 when required)."""
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(
                f"you must provide a '{name}' parameter", "missing_required_parameter", name
            )
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 256:
        raise bad_request(
            f"'{name}' must be a string of 1 to 256 characters, got {_show(value)}",
            "invalid_type",
            name,
        )
    return value


def read_flag(body: dict[str, Any], name: str) -> bool:
    """A boolean field; False when absent."""
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise bad_request(f"'{name}' must be a boolean, got {_show(value)}", "invalid_type", name)
    return bool(value)


def read_integer(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    """An integer field within ``low..high`` (not a bool, float or string); None when absent."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"'{name}' must be an integer, got {_show(value)}", "invalid_type", name)
    if not low <= value <= high:
        raise bad_request(
            f"'{name}' must be between {low} and {high}, got {_show(value)}",
            "invalid_value",
            name,
        )
    return value


def check_messages(body: dict[str, Any]) -> None:
    """400 unless ``messages`` (when given) is an array of objects."""
    messages = body.get("messages")
    if messages is None:
        return
    if not isinstance(messages, list):
        raise bad_request("'messages' must be an array", "invalid_type", "messages")
    if not all(isinstance(message, dict) for message in messages):
        raise bad_request("each message must be an object", "invalid_type", "messages")
