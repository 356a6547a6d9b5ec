"""The sampling API's defaults and limits: one definition that the API checks, the CLI's flags bound and the
app's widgets and share links read.

    NEATNESS.check(x)   # x as a float, or InkdigitsError naming the argument and its range
    NEATNESS.clamp(x)   # the nearest allowed value (share links: an out-of-range value is pulled in, not raised)
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from .errors import InkdigitsError


@dataclass(frozen=True)
class Limit:
    name: str  # the API argument; the CLI flag is --name
    default: float | int | None
    lo: float | int
    hi: float | int
    integer: bool = False
    what: str = ""  # what the value means, for help texts

    def check(self, value):
        """``value`` as an int or float within [lo, hi]; InkdigitsError for anything else (wrong type, NaN)."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InkdigitsError(f"{self.name} must be a {'whole ' if self.integer else ''}number, got {value!r:.40}")
        if self.integer:
            if not isinstance(value, numbers.Integral):
                if not (math.isfinite(value) and float(value).is_integer()):
                    raise InkdigitsError(f"{self.name} must be a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if not (self.lo <= value <= self.hi):  # NaN fails this too
            raise InkdigitsError(f"{self.name} must be {self.range}, got {value!r:.40}")
        return value

    def clamp(self, value):
        """The allowed value nearest ``value`` (a number); NaN gives the default."""
        value = float(value)
        if math.isnan(value):
            return self.default
        value = min(max(value, self.lo), self.hi)
        return int(round(value)) if self.integer else value

    @property
    def range(self) -> str:
        hi = "2**63 - 1" if self.hi == MAX_SEED else f"{self.hi:g}"
        return f"between {self.lo:g} and {hi}"


MAX_SEED = 2**63 - 1
SEED = Limit("seed", None, 0, MAX_SEED, integer=True, what="the same seed always gives the same images")
# Neatness scales the style vectors by 1 - neatness: 1 is the single most typical hand, 0 the variety the model
# learned, below 0 wider than that (less legible, more varied: what a recogniser's training set wants).
NEATNESS = Limit("neatness", 0.0, -1.0, 1.0,
                 what="0: the full variety of hands; 1: the single most typical hand; below 0: wilder than learned")
# `export --numbers`' default: a recogniser trained on numbers whose styles are 1.4x wider than the generator
# learned read 4-5 points more real numbers in every layout than at 0, and as many as at -0.6 or -0.8
# (benchmarks/ocr_numbers.py --neatness, two seeds; RESULTS section 12). Single digits keep 0: there the wider
# styles bought 0.1-0.2 points of CAS and made 2-5 % of the images read as another digit.
NUMBERS_NEATNESS = -0.4
SPACING = Limit("spacing", 1.0, 0.0, 4.0, what="gaps between glyphs: 1 is the hand's own, each step adds 4 px")
HEIGHT = Limit("height", None, 8, 512, integer=True, what="a fixed canvas height (the line is fitted)")
WIDTH = Limit("width", None, 8, 4096, integer=True, what="a fixed canvas width (with height)")
FRAMES = Limit("frames", 8, 2, 64, integer=True, what="frames of a morph")
ROWS = Limit("rows", 4, 1, 64, integer=True, what="styles of a style sheet")
# Images in one call: 1,000,000 images of 64 x 64 is 4 GB, the most one call may hold.
IMAGES = Limit("images", None, 0, 1_000_000, integer=True, what="images in one call")
