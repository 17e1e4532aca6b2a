"""What a request body carries, wherever it sits: its text (the prompt estimate) and its media.

Both walks read the whole parsed body, not a list of known fields, because a field the walk
skipped would be free: a prompt hidden in ``response_format``, an image in a tool result, a
``data:`` string of 400k characters. What the walk cannot name costs at least as much as what
it can: an unknown content part is media, every string and number is text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

Media = Counter[str]  # kind ("image", "audio", "video", "file") -> parts

#: a part ``type`` -> its media kind
MEDIA_TYPES: dict[str, str] = {
    **dict.fromkeys(("image", "image_url", "input_image", "image_file"), "image"),
    **dict.fromkeys(("computer_screenshot",), "image"),
    **dict.fromkeys(("audio", "input_audio", "audio_url"), "audio"),
    **dict.fromkeys(("video", "video_url", "input_video"), "video"),
    **dict.fromkeys(("file", "input_file", "file_url", "document"), "file"),
}
#: keys that hold media in a part without a ``type`` (Gemini's ``inline_data`` by mime type)
MEDIA_KEYS: dict[str, str] = {
    **MEDIA_TYPES,
    **dict.fromkeys(("inline_data", "inlineData", "file_data", "fileData"), "blob"),
}
#: part types that carry text (or structure walked on its own), not media
TEXT_TYPES = frozenset(
    {
        "text",
        "input_text",
        "output_text",
        "refusal",
        "summary_text",
        "reasoning_text",
        "thinking",
        "redacted_thinking",
        "tool_use",
        "tool_result",
        "function_call",
        "function_call_output",
        "message",
    }
)
#: keys whose object values are JSON schemas or free-form labels: names there are not media
SKIPPED_KEYS = frozenset(
    {"parameters", "schema", "json_schema", "input_schema", "response_format", "metadata"}
)
_CONTENT_KEYS = frozenset({"content", "parts"})


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    """A fast prompt-token estimate over EVERY string of the body (keys and values, ``data:``
    URLs and schemas included) at 4 characters a token, 1 token per number (token-id
    prompts), plus 4 per message or input item. Media parts add ``image_tokens`` each in the
    profile."""
    chars = 0
    numbers = 0
    stack: list[Any] = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            chars += len(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                chars += len(key)
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers += 1
    items = sum(len(v) for k in ("messages", "input") if isinstance(v := body.get(k), list))
    return -(-chars // 4) + numbers + 4 * items


def _blob_kind(part: object) -> str:
    """The kind of a Gemini-style blob by its mime type (a file when it does not say)."""
    mime = ""
    if isinstance(part, dict):
        value = part.get("mime_type", part.get("mimeType"))
        mime = value.lower() if isinstance(value, str) else ""
    major = mime.split("/", 1)[0]
    return major if major in ("image", "audio", "video") else "file"


def _typed(part: dict[str, Any], in_content: bool) -> str | None:
    """The media kind of a part by its ``type``, or None when the type says it is not one."""
    kind = part.get("type")
    if not isinstance(kind, str):
        return None
    if kind in MEDIA_TYPES:
        return MEDIA_TYPES[kind]
    if in_content and kind not in TEXT_TYPES:
        return "file"  # a content part type nobody taught us: media, never free
    return None


def media_parts(body: Mapping[str, Any]) -> Media:
    """Every media part of the body, by kind: typed parts anywhere, media keys of untyped
    objects (``{"image_url": ...}``, Gemini's ``inline_data``), unknown part types inside
    ``content``/``parts``; not inside JSON schemas or ``metadata``."""
    found: Media = Counter()
    stack: list[tuple[Any, bool]] = [(body, False)]
    while stack:
        value, in_content = stack.pop()
        if isinstance(value, list):
            stack.extend((item, in_content) for item in value)
            continue
        if not isinstance(value, dict):
            continue
        kind = _typed(value, in_content)
        if kind is not None:
            found[kind] += 1
            continue
        for key, item in value.items():
            media = MEDIA_KEYS.get(key)
            if media is not None and item is not None:
                found[_blob_kind(item) if media == "blob" else media] += 1
            elif isinstance(item, (dict, list)) and key not in SKIPPED_KEYS:
                stack.append((item, key in _CONTENT_KEYS))
    return found
