"""The app's share links, read without Streamlit: an address's query values become widget values that every
widget accepts. A value out of range is pulled into range, one that cannot be read is dropped, and each gets a
quiet note; nothing here raises.

    tab, values, notes = read_link({"tab": "digit", "count": "500"}, classes=["0", ..., "9"])
    # "digit", {"count": 64}, ["count 500 is out of range: 64 is used"]
"""

from __future__ import annotations

import math
from dataclasses import replace

from .compose import MAX_LINE
from .limits import FRAMES, MAX_SEED, NEATNESS, ROWS, SPACING, Limit

# The app's widgets show a page's worth: the API's limits for counts narrowed; spacing and neatness as they are.
COUNT = Limit("count", 5, 1, 64, integer=True, what="images of one class")
APP_ROWS = replace(ROWS, default=3, hi=8)
APP_FRAMES = replace(FRAMES, hi=16)
HANDS = ("one", "per-glyph")  # the Number tab's two choices, as links carry them
TABS = ("digit", "number", "styles", "morph")


def parse_seed_text(text: str) -> int | None:
    """A typed seed: None when empty, else an int in 0..2**63-1; ValueError with a message for anything else."""
    text = (text or "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > MAX_SEED:
        raise ValueError(f"seed must be a whole number from 0 to {MAX_SEED:,} (got {text[:24]!r}), "
                         "or empty for new images every click")  # fmt: skip
    return int(text)


def _number(limit: Limit):
    def read(text: str):
        value = float(text)  # ValueError: dropped
        if math.isnan(value):
            raise ValueError("not a number")
        if limit.integer and math.isfinite(value) and not value.is_integer():
            raise ValueError("not a whole number")
        clamped = limit.clamp(value)
        if clamped != value:
            return clamped, f"{limit.name} {text[:12]} is out of range ({limit.range}): {clamped:g} is used"
        return clamped, None

    return read


def _seed(text: str):
    parse_seed_text(text)
    return text.strip(), None


def _text(text: str):
    if len(text) > 4 * MAX_LINE:
        raise ValueError("too long")
    return text, None


def _choice(options):
    def read(text: str):
        if text not in options:
            raise ValueError("not a choice")
        return text, None

    return read


def _class_index(classes):
    def read(text: str):
        if not (text.isascii() and text.isdigit()) or int(text) >= len(classes):
            raise ValueError("not a class")
        return int(text), None

    return read


def readers(classes: list[str]) -> dict[str, dict]:
    """For each tab, the widgets a link carries and how to read each one back."""
    neat, index = _number(NEATNESS), _class_index(classes)
    return {
        "digit": {"digit": index, "count": _number(COUNT), "seed-digit": _seed, "neatness": neat},
        "number": {"number": _text, "number-hands": _choice(HANDS), "spacing": _number(SPACING),
                   "seed-number": _seed, "neatness": neat},  # fmt: skip
        "styles": {"rows": _number(APP_ROWS), "seed-styles": _seed, "neatness": neat},
        "morph": {"morph-a": index, "morph-b": index, "frames": _number(APP_FRAMES),
                  "morph-same": _choice(("true", "false")), "seed-morph": _seed, "neatness": neat},  # fmt: skip
    }


def read_link(params: dict, classes: list[str]) -> tuple[str | None, dict, list[str]]:
    """(the linked tab or None, widget key -> value, notes) from an address's query values."""
    tab = params.get("tab")
    if tab not in TABS:
        return None, {}, ([f"this link's tab {str(tab)[:20]!r} is unknown"] if tab is not None else [])
    values, notes = {}, []
    for key, read in readers(classes)[tab].items():
        if key not in params:
            continue
        text = str(params[key])
        try:
            value, note = read(text)
        except (ValueError, OverflowError):
            notes.append(f"{key} {text[:12]!r} cannot be used: the default is kept")
            continue
        values[key] = value == "true" if key == "morph-same" else value
        if note:
            notes.append(note)
    return tab, values, notes


def link_values(tab: str, state: dict, seed: int) -> dict[str, str]:
    """The query values that reproduce a result: the tab's widget values from ``state`` and the seed used."""
    values = {key: state.get(key) for key in readers([])[tab]}
    values[f"seed-{tab}"] = seed
    return {"tab": tab, **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items() if v is not None}}
