"""How the Redis engine stores a state in a hash field: the Python twin of ``lua/states.lua``.

Logs (sliding window, concurrency, usage history) are binary, in base-128 digits, so that every
character is ASCII and a client that decodes replies as UTF-8 reads the value unchanged: a
character ``wf + 8 * (first time < 0)``, a character ``wd + 9 * wa``, the first time's ``wf``
digits (big-endian, its absolute value) and its amount's ``wa``, then per later entry its time
delta (``wd`` digits) and amount (``wa`` digits; none when every amount is 1). Earlier versions
wrote base-36 text (``lq5o8n4w,2ee,1zk:3``: time deltas, ``:amount`` when not 1); it still
decodes, and the script writes it when a value does not fit the binary form, or when the
binary form passes 64 characters (Redis's listpack limit for a hash's values) and the text
does not. Counters, buckets and balances are decimal text (``start,count``).

``decode_state`` reads every one of these; ``encode_state`` writes what the script writes and
``encode_text`` what earlier versions wrote (tests store both and read them back).
"""

from __future__ import annotations

from itertools import pairwise

from ...algorithms import State

#: Algorithm name -> the one-letter code the script dispatches on.
CODES = {
    "sliding_window": "s",
    "concurrency": "c",
    "fixed_window": "w",
    "calendar": "w",
    "allowance": "a",
    "token_bucket": "t",
    "balance": "b",
    "history": "h",
}
_LOGS = {"s", "c", "h"}
_NEGATIVE = 8  # added to the first character when the first time is negative
_LARGEST = 2**53  # a delta from here on is written as text
_LISTPACK = 64  # Redis keeps a hash compact while its values stay within this
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def is_log(algorithm: str) -> bool:
    return CODES[algorithm] in _LOGS


def _unb36(text: str) -> int:
    return -int(text[1:], 36) if text.startswith("-") else int(text, 36)


def _b36(n: int) -> str:
    if n < 0:
        return "-" + _b36(-n)
    out = ""
    while True:
        n, digit = divmod(n, 36)
        out = _DIGITS[digit] + out
        if n == 0:
            return out


def _digits(text: str) -> int:
    value = 0
    for char in text:
        value = value * 128 + ord(char)
    return value


def _binary_log(raw: str) -> State:
    head, widths = ord(raw[0]), ord(raw[1])
    wf, wd, wa = head - _NEGATIVE if head > _NEGATIVE else head, widths % 9, widths // 9
    t = _digits(raw[2 : 2 + wf]) * (-1 if head > _NEGATIVE else 1)
    i = 2 + wf
    out = [t, _digits(raw[i : i + wa]) if wa else 1]
    i += wa
    while i < len(raw):
        t += _digits(raw[i : i + wd])
        i += wd
        out += (t, _digits(raw[i : i + wa]) if wa else 1)
        i += wa
    return tuple(out)


def _text_log(raw: str) -> State:
    out: list[int] = []
    prev = 0
    for part in raw.split(","):
        t, _, amount = part.partition(":")
        prev += _unb36(t)
        out += (prev, _unb36(amount) if amount else 1)
    return tuple(out)


def decode_state(algorithm: str, raw: str) -> State:
    """A stored state as the Python functions hold it (the inverse of the script's encode)."""
    if not raw:
        return ()
    if ord(raw[0]) <= 2 * _NEGATIVE:
        return _binary_log(raw)
    if is_log(algorithm):
        return _text_log(raw)
    return tuple(int(x) for x in raw.split(","))


def _put(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, digit = divmod(value, 128)
        out.append(chr(digit))
    return "".join(reversed(out))


def _width(value: int) -> int:
    width = 1
    while value >= 128**width:
        width += 1
    return width


def encode_text(algorithm: str, state: State) -> str:
    """``state`` as earlier versions stored it (base-36 logs, decimal counters)."""
    if not is_log(algorithm):
        return ",".join(map(str, state))
    parts, prev = [], 0
    for t, amount in zip(state[::2], state[1::2], strict=True):
        parts.append(_b36(t - prev) + ("" if amount == 1 else ":" + _b36(amount)))
        prev = t
    return ",".join(parts)


def _binary(state: State) -> str | None:
    times, amounts = state[::2], state[1::2]
    deltas = [b - a for a, b in pairwise(times)]
    if min(deltas, default=0) < 0 or max(deltas, default=0) >= _LARGEST or min(amounts) < 1:
        return None
    first = times[0]
    wf, wd = _width(abs(first)), _width(max(deltas, default=0))
    wa = 0 if max(amounts) == 1 else _width(max(amounts))
    out = [chr(wf + (_NEGATIVE if first < 0 else 0)), chr(wd + 9 * wa), _put(abs(first), wf)]
    out.append(_put(amounts[0], wa))
    for delta, amount in zip(deltas, amounts[1:], strict=True):
        out += (_put(delta, wd), _put(amount, wa))
    return "".join(out)


def encode_state(algorithm: str, state: State) -> str:
    """``state`` as the script stores it (the binary log, unless a value does not fit it or it
    passes the listpack limit where the text does not)."""
    if not is_log(algorithm) or not state:
        return encode_text(algorithm, state)
    raw = _binary(state)
    text = encode_text(algorithm, state)
    if raw is not None and (len(raw) <= _LISTPACK or len(text) > _LISTPACK):
        return raw
    return text
