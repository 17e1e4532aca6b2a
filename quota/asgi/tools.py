"""One normaliser for every spelling of a tool in the wild, and what each one asks for.

A tool is either native (run by the provider: web search, URL context, code execution), which
asks for its own feature and charges 1 on its meter, or a function tool (feature ``tools``).
Spellings read:

- ``{"type": "web_search"}``, dated types (``web_search_preview_2025_03_11``), camelCase;
- ``{"type": "function", "function": {"name": "google_search"}}`` (Zylo's documented form)
  and ``{"type": "function", "name": ...}`` (Responses API): a function named like a native
  tool may be run as either, so it asks for both ``tools`` and the native feature;
- ``{"google_search": {}}``, ``{"googleSearch": {}}`` (Gemini);
- the top-level ``web_search_options`` object (one web search), legacy ``functions``, and a
  ``tool_choice`` object (forcing a tool asks for it);
- Anthropic's dated types (``web_search_20250305``, ``code_execution_20250522``).

What it cannot name is a function tool: never free.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .responses import bad_request

#: spelling (snake_case, undated) -> native tool name
NATIVE_TOOLS: dict[str, str] = {
    "google_search": "google_search",
    "google_search_retrieval": "google_search",
    "web_search": "google_search",
    "web_search_preview": "google_search",
    "url_context": "url_context",
    "web_fetch": "url_context",
    "code_execution": "code_execution",
    "code_interpreter": "code_execution",
}
FUNCTION = "tools"
_DATED = re.compile(r"_(?:\d{4}_\d{2}_\d{2}|\d{8})$")  # OpenAI's and Anthropic's dates
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def spelling(name: str) -> str:
    """A tool name as the table spells it: camelCase to snake_case, date suffix dropped."""
    return _DATED.sub("", _CAMEL.sub(r"_\1", name).lower())


class ToolReader:
    """Reads the tools of a body against a table of native spellings."""

    def __init__(self, native: Mapping[str, str] = NATIVE_TOOLS) -> None:
        self.native = {spelling(k): v for k, v in native.items()}

    def native_of(self, name: object) -> str | None:
        """The native tool a name spells, or None."""
        return self.native.get(spelling(name)) if isinstance(name, str) else None

    def read(self, body: Mapping[str, Any]) -> tuple[set[str], list[str]]:
        """(features asked, native tools used in order) of a request body; 400 on a malformed
        ``tools`` or ``functions`` (not an array of objects)."""
        features: set[str] = set()
        native: list[str] = []
        for key in ("tools", "functions"):
            tools = body.get(key)
            if tools is None:
                continue
            if not isinstance(tools, list):
                raise bad_request(f"'{key}' must be an array", "invalid_type", key)
            for tool in tools:
                if not isinstance(tool, dict):
                    raise bad_request(f"each of '{key}' must be an object", "invalid_type", key)
                names = self._names(tool) if key == "tools" else []
                if not names or any(n is None for n in names):
                    features.add(FUNCTION)
                for name in names:
                    if name is not None:
                        features.add(name)
                        if name not in native:
                            native.append(name)
        choice = body.get("tool_choice")
        if isinstance(choice, dict):  # forcing a tool asks for it, listed or not
            for name in self._names(choice):
                features.add(FUNCTION if name is None else name)
                if name is not None and name not in native:
                    native.append(name)
        if body.get("web_search_options") is not None:
            features.add("google_search")
            if "google_search" not in native:
                native.append("google_search")
        return features, native

    def _names(self, tool: dict[str, Any]) -> list[str | None]:
        """The native tools one tool entry names; None marks a function tool in the list."""
        kind = tool.get("type")
        if kind is not None and not isinstance(kind, str):
            raise bad_request("a tool's 'type' must be a string", "invalid_type", "tools")
        if kind == "function":
            function = tool.get("function")
            name = function.get("name") if isinstance(function, dict) else tool.get("name")
            found = self.native_of(name)
            return [None] if found is None else [None, found]
        if kind is not None:
            return [self.native_of(kind)]
        keyed = [self.native_of(key) for key in tool]  # Gemini: {"googleSearch": {}}
        return keyed or [None]
