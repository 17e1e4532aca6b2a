"""Aligned plain-text tables for the command line.

A table is a header, a separator line of dashes and the rows; numbers are right-aligned, text is
left-aligned, and :class:`Section` rows print a heading across the table. Given a ``width``, the
widest columns shrink and their cells wrap (lists break after their commas) so every line fits.
No colours, no terminal control codes: the output is the same in a pipe as on a screen.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

Cell: TypeAlias = "str | int | float | None"

_NUMBER = re.compile(r"^[+-]?\$?\d[\d,]*(\.\d+)?( ?(%|s|ms|x|M))?$")
_EMPTY = ("", "-")
_MIN_WIDTH = 6
_LONG_WORD = 24


@dataclass(frozen=True, slots=True)
class Section:
    """A heading row that spans the whole table, between groups of rows."""

    title: str


Row: TypeAlias = "Sequence[Cell] | Section"


def cell_text(value: Cell) -> str:
    """The text of one cell: thousands separators for integers, at most 3 decimals for floats."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return str(value)


def dollars(micro: int) -> str:
    """Credits (micro-dollars) as dollars: 4_500_000 -> "$4.50"."""
    sign = "-" if micro < 0 else ""
    return f"{sign}${abs(micro) / 1_000_000:,.2f}"


def is_number(value: Cell) -> bool:
    """Whether a cell reads as a number ("1,200", "$4.50", "49.75s", 3)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return True
    return isinstance(value, str) and bool(_NUMBER.match(value.strip()))


def terminal_width() -> int | None:
    """Width to fit: ``$COLUMNS``, else the terminal's; None (unbounded) in a pipe."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def render(
    headers: Sequence[str],
    rows: Sequence[Row],
    *,
    align: str | None = None,
    width: int | None = None,
    gap: int = 2,
    spaced: bool | None = None,
) -> str:
    """The table as text (no trailing newline).

    ``align`` holds one letter per column, ``l`` or ``r``; by default a column is right-aligned
    when all its non-empty cells are numbers. ``width`` bounds the line length: the widest
    columns shrink and their cells wrap at spaces (lists after their commas); words are not
    broken unless longer than 24 characters, so a table may stay wider than ``width``.
    ``spaced`` puts a blank line between rows; by default only when some cell wraps.
    """
    ncols = len(headers)
    if align is not None and (len(align) != ncols or set(align) - {"l", "r"}):
        raise ValueError(f"align needs one 'l' or 'r' per column ({ncols}), got {align!r}")
    body = [row for row in rows if not isinstance(row, Section)]
    for row in body:
        if len(row) != ncols:
            raise ValueError(f"row {list(row)!r} has {len(row)} cells; the header has {ncols}")
    aligns = align or "".join(_guess([row[i] for row in body]) for i in range(ncols))
    texts: list[list[str] | Section] = [
        row if isinstance(row, Section) else [cell_text(c) for c in row] for row in rows
    ]
    cells = [r for r in texts if not isinstance(r, Section)]
    columns = [[headers[i], *(r[i] for r in cells)] for i in range(ncols)]
    widths = [max(len(t) for t in col) for col in columns]
    if width is not None:
        words = [max(len(w) for t in col for w in [*t.split(), ""]) for col in columns]
        widths = _shrink(widths, words, width - gap * (ncols - 1))
    if spaced is None:
        spaced = any(len(t) > w for r in cells for t, w in zip(r, widths, strict=True))
    total = sum(widths) + gap * (ncols - 1)
    lines = _physical(list(headers), widths, aligns, gap)
    lines.append((" " * gap).join("-" * w for w in widths))
    for item in texts:
        if isinstance(item, Section):
            lines.extend(_section(item.title, total))
            continue
        if spaced and not lines[-1].startswith(("--", "-" * widths[0])):
            lines.append("")
        lines.extend(_physical(item, widths, aligns, gap))
    return "\n".join(line.rstrip() for line in lines)


def _guess(cells: list[Cell]) -> str:
    """``r`` for a column of numbers (blanks and dashes aside), else ``l``."""
    values = [c for c in cells if cell_text(c).strip() not in _EMPTY]
    return "r" if values and all(is_number(c) for c in values) else "l"


def _shrink(widths: list[int], words: list[int], room: int) -> list[int]:
    """Narrow the widest columns until they fit in ``room``, but not below their longest word
    (cells wrap at spaces; only words longer than 24 characters are broken)."""
    widths = list(widths)
    floors = [
        min(w, max(m, _MIN_WIDTH) if m <= _LONG_WORD else _LONG_WORD)
        for m, w in zip(words, widths, strict=True)
    ]
    while sum(widths) > room:
        candidates = [i for i, w in enumerate(widths) if w > floors[i]]
        if not candidates:
            break
        widths[max(candidates, key=lambda i: widths[i])] -= 1
    return widths


def _wrap(text: str, width: int) -> list[str]:
    """Lines of at most ``width``: comma-separated lists break after a comma, words at spaces."""
    if len(text) <= width:
        return [text]
    items = text.split(", ")
    lines: list[str] = []
    for n, item in enumerate(items):
        piece = item if n == len(items) - 1 else item + ","
        if lines and len(lines[-1]) + 1 + len(piece) <= width:
            lines[-1] += " " + piece
        else:
            lines.extend(textwrap.wrap(piece, width, break_on_hyphens=False) or [""])
    return lines


def _physical(cells: Sequence[str], widths: Sequence[int], aligns: str, gap: int) -> list[str]:
    """One logical row as one or more printed lines."""
    columns = [_wrap(text, w) for text, w in zip(cells, widths, strict=True)]
    height = max(len(c) for c in columns)
    out = []
    for k in range(height):
        parts = []
        for col, w, a in zip(columns, widths, aligns, strict=True):
            text = col[k] if k < len(col) else ""
            parts.append(text.rjust(w) if a == "r" else text.ljust(w))
        out.append((" " * gap).join(parts))
    return out


def _section(title: str, total: int) -> list[str]:
    """A heading line: ``-- title ------`` across the table."""
    head = f"-- {title} "
    if len(head) >= total:
        return [head.rstrip()]
    return [head + "-" * (total - len(head))]
