"""Numbers that look written: generated glyphs cropped to their ink and placed the way one hand places them.

One *hand* is drawn once per number: a size, a spacing, a slant and how steady the baseline is. Each glyph is
cropped to its ink, scaled to the hand's size (with a little per-glyph variation), placed left to right with
a gap from the hand's range (negative: slight overlaps), and set on a shared baseline with a small jitter.
Separators are drawn as strokes: '-' a dash, '.' a dot, ':' two dots, '/' a slash; a space is a wider gap.
Returns the image and one box per character, (x0, y0, x1, y1, char), end-exclusive, for OCR labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .config import DIGITS
from .errors import InkdigitsError
from .limits import SPACING

SEPARATORS = "-./: "
MAX_NUMBER_DIGITS = 16  # glyphs in one written line
MAX_LINE = 32  # characters in one written line, separators included
INK = 40  # grey level above which a pixel counts as ink
MARGIN = 2
MAX_OVERLAP = 2  # pixels two neighbouring glyphs' ink may overlap, before the slant


@dataclass(frozen=True)
class Layout:
    """The ranges a hand is drawn from. PLAIN is one tidy writer's line (the app, `generate --number`); VARIED
    covers what real numbers do, for OCR training sets (`export --numbers`): small to canvas-filling glyphs whose
    heights vary within a number, thin and bold strokes, wide gaps, a steep slant, an unsteady baseline, and a
    line placed anywhere on a fixed canvas."""

    name: str
    height: tuple[float, float]  # a glyph's ink height, pixels, before any fitting to a canvas
    size: tuple[float, float]  # each glyph's height, as a share of the hand's
    gap: tuple[float, float]
    slant: float  # at most this shear either way
    wobble: tuple[float, float]
    bold: tuple[int, ...] = (0,)  # stroke weights a hand may have: -1 thinner, 0 as drawn, +1 bolder
    fill: tuple[float, float] = (1.0, 1.0)  # share of the fitted size a line takes on a fixed canvas


PLAIN = Layout("plain", height=(17, 22), size=(0.93, 1.07), gap=(-1.0, 3.0), slant=0.12, wobble=(0.3, 1.2))
VARIED = Layout("varied", height=(14, 26), size=(0.8, 1.2), gap=(-2.0, 7.0), slant=0.3, wobble=(0.3, 2.5),
                bold=(-1, 0, 0, 1), fill=(0.55, 1.0))  # fmt: skip
LAYOUTS = {layout.name: layout for layout in (PLAIN, VARIED)}


@dataclass
class Hand:
    """How one writer lays out a line; drawn once per number."""

    height: float  # ink height of a glyph, in pixels
    gap: float  # mean horizontal gap between glyphs (negative: overlap)
    slant: float  # horizontal shear (x += slant * (baseline - y))
    wobble: float  # standard deviation of each glyph's baseline, pixels
    stroke: float  # separator stroke width, pixels
    bold: int = 0  # glyph strokes: -1 thinned, 0 as generated, +1 thickened (by one pixel's min or max filter)
    layout: Layout = PLAIN

    @classmethod
    def draw(cls, rng: np.random.Generator, spacing: float = SPACING.default, layout: Layout = PLAIN) -> Hand:
        # spacing 1 is the hand's own gap; each step of 1 adds (or removes) 4 px, overlaps still bounded.
        # PLAIN draws exactly what inkdigits 0.2 drew, so a seed gives the same line as before.
        hand = cls(height=rng.uniform(*layout.height), gap=rng.uniform(*layout.gap) + 4 * (spacing - 1),
                   slant=rng.uniform(-layout.slant, layout.slant), wobble=rng.uniform(*layout.wobble),
                   stroke=rng.uniform(1.8, 2.8), layout=layout)  # fmt: skip
        if len(layout.bold) > 1:
            hand.bold = int(rng.choice(layout.bold))
        return hand


def ink_box(glyph: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the pixels above INK; the whole image if there are none."""
    ys, xs = np.nonzero(glyph > INK)
    if len(xs) == 0:
        return 0, 0, glyph.shape[1], glyph.shape[0]
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def scaled(glyph: np.ndarray, height: float) -> np.ndarray:
    """The glyph cropped to its ink and resized to ``height`` pixels tall (aspect kept; thin glyphs such as
    1 keep their width)."""
    x0, y0, x1, y1 = ink_box(glyph)
    crop = glyph[y0:y1, x0:x1]
    factor = height / crop.shape[0]
    size = (max(1, round(crop.shape[1] * factor)), max(1, round(height)))
    return np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))


def separator(char: str, hand: Hand, rng: np.random.Generator) -> np.ndarray:
    """A separator drawn as strokes (4x supersampled, then reduced, so edges are soft like the glyphs')."""
    h = hand.height
    # '/' leans at about 45 degrees and stops short of the digits' top: a steeper slash reads as a 1
    w = {"-": 0.45 * h, ".": 0.2 * h, ":": 0.2 * h, "/": 0.75 * h, " ": 0.45 * h}[char]
    s = 4
    img = Image.new("L", (max(1, round(w)) * s, round(h) * s), 0)
    d = ImageDraw.Draw(img)
    width, r = round(hand.stroke * s), hand.stroke * s * 0.7
    W, H = img.size
    if char == "-":
        y = H * rng.uniform(0.5, 0.6)
        d.line([(0.05 * W, y + rng.normal(0, s)), (0.95 * W, y + rng.normal(0, s))], fill=255, width=width)
    elif char == "/":
        d.line([(0.05 * W, 0.95 * H), (0.95 * W, 0.2 * H)], fill=255, width=round(0.8 * width))
    elif char in ".:":
        for y in ([0.9 * H] if char == "." else [0.4 * H, 0.9 * H]):
            d.ellipse([W / 2 - r, y - r, W / 2 + r, y + r], fill=255)
    return np.asarray(img.resize((max(1, round(w)), round(h)), Image.Resampling.BOX))


def compose(glyphs: list[np.ndarray], text: str, rng: np.random.Generator, hand: Hand | None = None,
            spacing: float = SPACING.default, height: int | None = None, width: int | None = None,
            layout: Layout = PLAIN):  # fmt: skip
    """Lay out ``text``: its non-separator characters are ``glyphs`` (uint8 images, white on black) in order.

    ``height``/``width``: a fixed canvas; the line is scaled to fit and centred (PLAIN), or scaled to a share of
    that and placed anywhere on it (VARIED). Returns (image uint8 (H, W), boxes [(x0, y0, x1, y1, char)])."""
    hand = hand or Hand.draw(rng, spacing, layout)
    pieces, it = [], iter(glyphs)
    for ch in text:
        if ch in SEPARATORS:
            pieces.append((ch, separator(ch, hand, rng), 0.0))
        else:
            size = hand.height * rng.uniform(*hand.layout.size)
            pieces.append((ch, weighted(scaled(next(it), size), hand.bold), rng.normal(0, hand.wobble)))
    lift = abs(hand.slant) * hand.height * 1.3 + 4  # room for the slant to lean into
    canvas_h = round(hand.height * 1.25 + 2 * MARGIN + 2 * hand.wobble + 4)
    baseline = canvas_h - MARGIN - 2
    total = sum(p.shape[1] for _, p, _ in pieces) + max(0.0, hand.gap) * len(pieces) + 2 * MARGIN + 2 * lift
    canvas = np.zeros((canvas_h, int(total) + 8), np.uint8)
    x, boxes = MARGIN + lift, []
    for i, (ch, piece, dy) in enumerate(pieces):
        if i:
            after_space = ch == " " or pieces[i - 1][0] == " "
            x += max(hand.gap, 0) if after_space else max(hand.gap + rng.normal(0, 0.6), -MAX_OVERLAP)
        h, w = piece.shape
        top = int(round(baseline - h + dy))
        top = min(max(top, 0), canvas_h - h)
        left = int(round(x))
        region = canvas[top : top + h, left : left + w]
        np.maximum(region, piece, out=region)
        if ch != " ":
            bx0, by0, bx1, by1 = ink_box(piece)
            boxes.append([left + bx0, top + by0, left + bx1, top + by1, ch])
        x += w
    canvas, boxes = shear(canvas, boxes, hand.slant, baseline)
    canvas, boxes = trim(canvas, boxes)
    if height or width:
        canvas, boxes = fit(canvas, boxes, height or canvas.shape[0], width, rng, hand.layout.fill)
    return canvas, [tuple(b) for b in boxes]


def weighted(glyph: np.ndarray, bold: int) -> np.ndarray:
    """Thicker (+1) or thinner (-1) strokes: a 3x3 max or min filter, on glyphs tall enough to keep their shape."""
    if bold == 0 or glyph.shape[0] < 12:
        return glyph
    size = 3
    filtered = Image.fromarray(glyph).filter(ImageFilter.MaxFilter(size) if bold > 0 else ImageFilter.MinFilter(size))
    out = np.asarray(filtered)
    return out if (out > INK).any() else glyph  # never thin a glyph away


def shear(canvas: np.ndarray, boxes: list, slant: float, baseline: int):
    """Slant the whole line about its baseline (x' = x + slant * (baseline - y)); boxes follow their corners."""
    img = Image.fromarray(canvas)
    out = img.transform(img.size, Image.Transform.AFFINE, (1, slant, -slant * baseline, 0, 1, 0),
                        resample=Image.Resampling.BILINEAR)  # fmt: skip
    moved = []
    for x0, y0, x1, y1, ch in boxes:
        xs = [x + slant * (baseline - y) for x in (x0, x1) for y in (y0, y1)]
        moved.append([int(np.floor(min(xs))), y0, int(np.ceil(max(xs))), y1, ch])
    return np.asarray(out), moved


def trim(canvas: np.ndarray, boxes: list):
    """Cut the canvas to the ink plus a margin, shifting the boxes."""
    x0, y0, x1, y1 = ink_box(canvas)
    x0, y0 = max(0, x0 - MARGIN), max(0, y0 - MARGIN)
    x1, y1 = min(canvas.shape[1], x1 + MARGIN), min(canvas.shape[0], y1 + MARGIN)
    out = canvas[y0:y1, x0:x1]
    return out, [[max(0, bx0 - x0), max(0, by0 - y0), min(out.shape[1], bx1 - x0), min(out.shape[0], by1 - y0), ch]
                 for bx0, by0, bx1, by1, ch in boxes]  # fmt: skip


def fit(canvas: np.ndarray, boxes: list, height: int, width: int | None, rng: np.random.Generator | None = None,
        fill: tuple[float, float] = (1.0, 1.0)):  # fmt: skip
    """Scale the line to fit a fixed ``height`` x ``width`` canvas (aspect kept) and centre it; with ``fill``
    other than (1, 1), scale it to a random share of that and put it anywhere on the canvas."""
    h, w = canvas.shape
    factor = min(height / h, width / w) if width else height / h
    placed = fill != (1.0, 1.0) and rng is not None
    if placed:
        factor *= rng.uniform(*fill)
    new_w, new_h = max(1, round(w * factor)), max(1, round(h * factor))
    small = np.asarray(Image.fromarray(canvas).resize((new_w, new_h), Image.Resampling.BILINEAR))
    out_w = width or new_w
    out = np.zeros((height, out_w), np.uint8)
    ox, oy = (out_w - new_w) // 2, (height - new_h) // 2
    if placed:
        ox, oy = int(rng.integers(0, out_w - new_w + 1)), int(rng.integers(0, height - new_h + 1))
    out[oy : oy + new_h, ox : ox + new_w] = small
    return out, [[ox + int(np.floor(x0 * factor)), oy + int(np.floor(y0 * factor)),
                  min(out_w, ox + int(np.ceil(x1 * factor))), min(height, oy + int(np.ceil(y1 * factor))), ch]
                 for x0, y0, x1, y1, ch in boxes]  # fmt: skip


def parse_line(text: str, names: list[str]) -> tuple[str, list[int]]:
    """(the characters to lay out, the class index of each non-separator) for ``write``. Raises InkdigitsError."""
    if not isinstance(text, str):
        raise InkdigitsError(f"text must be a string, got {text!r:.40}")
    line = " ".join(text.split())  # runs of whitespace are one space
    if any(len(n) != 1 for n in names):
        raise InkdigitsError("this model's class names are longer than one character: write lines with generate")
    glyphs = [ch for ch in line if ch not in SEPARATORS or ch in names]
    if not glyphs:
        raise InkdigitsError("type at least one digit (0-9)" if names == DIGITS else "type at least one class name")
    bad = sorted({ch for ch in glyphs if ch not in names})
    if bad:
        allowed = "digits 0-9" if names == DIGITS else "the classes " + ", ".join(names[:12])
        raise InkdigitsError(f"{text!r}: only {allowed} and the separators - . / : and space can be written "
                             f"(found {''.join(bad)!r})")  # fmt: skip
    if len(glyphs) > MAX_NUMBER_DIGITS or len(line) > MAX_LINE:
        raise InkdigitsError(f"at most {MAX_NUMBER_DIGITS} {'digits' if names == DIGITS else 'characters'} "
                             f"and {MAX_LINE} characters in all (got {len(glyphs)} and {len(line)})")  # fmt: skip
    return line, [names.index(ch) for ch in glyphs]
