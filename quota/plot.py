"""Line charts as PNG files, with the standard library only (zlib, struct).

A ``Canvas`` is an RGB raster with lines, rectangles and a 3x5 pixel font; ``png`` encodes it
(8-bit RGB, filter 0 on every row, one IDAT chunk, tEXt chunks for metadata). ``line_chart``
draws ``quota simulate``'s plot: one coloured line per series over a time axis, y from 0 to 100%.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence

RGB = tuple[int, int, int]

WHITE: RGB = (255, 255, 255)
BLACK: RGB = (0, 0, 0)
GRID: RGB = (225, 225, 225)
#: Distinguishable line colours (Tableau 10).
PALETTE: tuple[RGB, ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)  # fmt: skip

# A 3x5 font: five rows of three pixels per glyph ("#" = ink). Letters print as capitals.
_GLYPHS = {
    "0": "####.##.##.####", "1": ".#.##..#..#.###", "2": "###..#####..###",
    "3": "###..####..####", "4": "#.##.####..#..#", "5": "####..###..####",
    "6": "####..####.####", "7": "###..#..#..#..#", "8": "####.#####.####",
    "9": "####.####..####", "a": ".#.#.#####.##.#", "b": "##.#.###.#.###.",
    "c": ".###..#..#...##", "d": "##.#.##.##.###.", "e": "####..##.#..###",
    "f": "####..###..#..#", "g": ".###..#.##.#.##", "h": "#.##.####.##.##",
    "i": "###.#..#..#.###", "j": "..#..#..##.#.#.", "k": "#.##.###.#.##.#",
    "l": "#..#..#..#..###", "m": "#.#####.##.##.#", "n": "##.#.##.##.##.#",
    "o": ".#.#.##.##.#.#.", "p": "##.#.###.#..#..", "q": ".#.#.##.##.#.##",
    "r": "##.#.###.#.##.#", "s": ".###...#...###.", "t": "###.#..#..#..#.",
    "u": "#.##.##.##.####", "v": "#.##.##.##.#.#.", "w": "#.##.##.#####.#",
    "x": "#.##.#.#.#.##.#", "y": "#.##.#.#..#..#.", "z": "###..#.#.#..###",
    " ": "...............", ".": "............#..", ":": "....#.....#....",
    "/": "..#..#.#.#..#..", "%": "#.#..#.#.#..#.#", "-": "......###......",
    "_": "............###", "(": ".#.#..#..#...#.", ")": ".#...#..#..#.#.",
    ",": "..........#.#..", "+": "....#.###.#....", "=": "...###...###...",
    "#": "#.####.####.#.#", "'": ".#..#..........", "?": "###..#.##....#.",
    "$": ".###.#.#.###.#.",
}  # fmt: skip
FONT = _GLYPHS


class Canvas:
    """An RGB raster, origin at the top left."""

    def __init__(self, width: int, height: int, background: RGB = WHITE) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"canvas size must be positive, got {width}x{height}")
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def set(self, x: int, y: int, color: RGB) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = 3 * (y * self.width + x)
            self.pixels[i : i + 3] = bytes(color)

    def get(self, x: int, y: int) -> RGB:
        i = 3 * (y * self.width + x)
        return self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: RGB) -> None:
        """Fill the rectangle with corners (x0, y0) and (x1, y1), both included."""
        for y in range(max(min(y0, y1), 0), min(max(y0, y1), self.height - 1) + 1):
            for x in range(max(min(x0, x1), 0), min(max(x0, x1), self.width - 1) + 1):
                self.set(x, y, color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: RGB, thick: int = 1) -> None:
        """Bresenham's line, ``thick`` pixels wide."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            for t in range(thick):
                self.set(x0, y0 + t, color)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def text(self, x: int, y: int, text: str, color: RGB = BLACK, scale: int = 2) -> int:
        """Draw ``text`` (unknown characters print as '?'); return the x after it."""
        for ch in text.lower():
            glyph = FONT.get(ch, FONT["?"])
            for i, ink in enumerate(glyph):
                if ink == "#":
                    row, col = divmod(i, 3)
                    self.rect(
                        x + col * scale,
                        y + row * scale,
                        x + col * scale + scale - 1,
                        y + row * scale + scale - 1,
                        color,
                    )
            x += 4 * scale
        return x


def text_width(text: str, scale: int = 2) -> int:
    return 4 * scale * len(text)


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png(canvas: Canvas, text: Mapping[str, str] | None = None) -> bytes:
    """The canvas as PNG bytes (8-bit RGB), with ``text`` as tEXt chunks (Latin-1)."""
    w, h = canvas.width, canvas.height
    stride = 3 * w
    raw = b"".join(b"\x00" + bytes(canvas.pixels[y * stride : (y + 1) * stride]) for y in range(h))
    out = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))]
    for key, value in (text or {}).items():
        out.append(_chunk(b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1")))
    out += [_chunk(b"IDAT", zlib.compress(raw, 9)), _chunk(b"IEND", b"")]
    return b"".join(out)


def _clock(seconds: float) -> str:
    s = round(seconds)
    if s % 86_400 == 0 and s:
        return f"{s // 86_400}d"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}" if s % 3600 else f"{s // 3600}h"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}" if s % 60 else f"{s // 60}m"
    return f"{s}s"


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    duration: float,
    title: str,
    width: int = 900,
    height: int = 420,
) -> Canvas:
    """Step lines of ``(seconds, fraction)`` points per series, x in [0, duration] seconds and
    y in [0, 1] (clamped), with a grid, axis labels and a legend."""
    left, right, top = 56, 16, 34
    legend_rows = (len(series) + 3) // 4
    bottom = 36 + 18 * legend_rows
    pw, ph = width - left - right, height - top - bottom
    if pw < 50 or ph < 50:
        raise ValueError(f"a {width}x{height} chart leaves no room to plot")
    c = Canvas(width, height)
    c.text(left, 10, title[: pw // 8])

    def px(t: float) -> int:
        return left + round(min(max(t / duration, 0.0), 1.0) * (pw - 1)) if duration > 0 else left

    def py(f: float) -> int:
        return top + round((1.0 - min(max(f, 0.0), 1.0)) * (ph - 1))

    for k in range(5):
        y = py(k / 4)
        c.line(left, y, left + pw - 1, y, GRID)
        label = f"{25 * k}%"
        c.text(left - 6 - text_width(label), y - 4, label)
    for k in range(7):
        x = px(duration * k / 6)
        c.line(x, top, x, top + ph - 1, GRID)
        label = _clock(duration * k / 6)
        c.text(
            min(max(x - text_width(label) // 2, 0), width - text_width(label)), top + ph + 6, label
        )
    c.line(left, top, left, top + ph - 1, BLACK)
    c.line(left, top + ph - 1, left + pw - 1, top + ph - 1, BLACK)
    for i, (name, points) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        last: tuple[int, int] | None = None
        for t, f in points:
            x, y = px(t), py(f)
            if last is not None:
                c.line(last[0], last[1], x, last[1], color, 2)  # hold until the next point
                c.line(x, last[1], x, y, color, 2)
            last = (x, y)
        if last is not None:
            c.line(last[0], last[1], left + pw - 1, last[1], color, 2)
        lx = left + (i % 4) * (pw // 4)
        ly = top + ph + 24 + 18 * (i // 4)
        c.rect(lx, ly + 2, lx + 14, ly + 6, color)
        c.text(lx + 20, ly, name[: max(pw // 4 // 8 - 3, 1)])
    return c
