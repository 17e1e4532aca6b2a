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
_MEDIA_KEY_SET = frozenset(MEDIA_KEYS)
_NUMBERS = (int, float)  # exact classes: a bool is no number here


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    """A fast prompt-token estimate over EVERY string of the body (keys and values, ``data:``
    URLs and schemas included) at 4 characters a token, 1 token per number (token-id
    prompts), plus 4 per message or input item. Media parts add ``image_tokens`` each in the
    profile."""
    return scan(body)[0]


def media_parts(body: Mapping[str, Any]) -> Media:
    """Every media part of the body, by kind: typed parts anywhere, media keys of untyped
    objects (``{"image_url": ...}``, Gemini's ``inline_data``), unknown part types inside
    ``content``/``parts``; not inside JSON schemas or ``metadata``."""
    return scan(body)[1]


def _blob_kind(part: object) -> str:
    """The kind of a Gemini-style blob by its mime type (a file when it does not say)."""
    mime = ""
    if isinstance(part, dict):
        value = part.get("mime_type", part.get("mimeType"))
        mime = value.lower() if isinstance(value, str) else ""
    major = mime.split("/", 1)[0]
    return major if major in ("image", "audio", "video") else "file"


def _part(value: dict[str, Any], in_content: bool) -> str | None:
    """The media kind of a part by its ``type``; None when the type does not make it one."""
    kind = value.get("type")
    if kind.__class__ is not str:
        return None
    if kind in MEDIA_TYPES:
        return MEDIA_TYPES[kind]
    if in_content and kind not in TEXT_TYPES:
        return "file"  # a content part type nobody taught us: media, never free
    return None


def scan(body: Mapping[str, Any]) -> tuple[int, Media]:
    """(prompt-token estimate, media parts) of a body, in one walk over every value.

    A context travels with each container: 0 = media are not looked for (inside a schema, a
    ``metadata`` label or a media part already counted; its text still counts), 1 = looked
    for, 2 = looked for inside ``content``/``parts`` (where an unknown part type is media)."""
    chars = numbers = 0
    found: Media = Counter()
    stack: list[tuple[Any, int]] = [(body, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        value, ctx = pop()
        if isinstance(value, list):
            for item in value:
                if isinstance(item, str):
                    chars += len(item)
                elif isinstance(item, (dict, list)):
                    push((item, ctx))
                elif item.__class__ in _NUMBERS:
                    numbers += 1
            continue
        chars += sum(map(len, value))  # keys are text the model may read too
        child = 0
        if ctx:
            kind = None if value is body else _part(value, ctx == 2)
            if kind is not None:
                found[kind] += 1  # its insides still count as text, not as more media
            else:
                child = 1
                if not _MEDIA_KEY_SET.isdisjoint(value):
                    _count_media_keys(value, found)
        for key, item in value.items():
            if isinstance(item, str):
                chars += len(item)
            elif isinstance(item, (dict, list)):
                push((item, _child(key) if child else 0))
            elif item.__class__ in _NUMBERS:
                numbers += 1
    messages = sum(len(v) for k in ("messages", "input") if isinstance(v := body.get(k), list))
    return -(-chars // 4) + numbers + 4 * messages, found


def _child(key: str) -> int:
    """The context of the value under ``key`` of a dict where media are looked for."""
    if key in SKIPPED_KEYS or key in MEDIA_KEYS:
        return 0
    return 2 if key in _CONTENT_KEYS else 1


def _count_media_keys(value: dict[str, Any], found: Media) -> None:
    for key in _MEDIA_KEY_SET.intersection(value):
        item = value[key]
        if item is not None:
            media = MEDIA_KEYS[key]
            found[_blob_kind(item) if media == "blob" else media] += 1
