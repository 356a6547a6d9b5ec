"""inkdigits web app: ``inkdigits app`` (any install) or ``streamlit run app.py`` (a checkout, Streamlit Cloud).

Only the sampling API is imported (no training code, no dataset). The model loads once per server; each
user's results live in their own st.session_state, so they survive reruns when another widget changes.
"""

from __future__ import annotations

import os

import numpy as np
import streamlit as st
import torch

from inkdigits import images as im
from inkdigits.errors import InkdigitsError
from inkdigits.resources import default_weights
from inkdigits.sample import (
    MAX_NUMBER_DIGITS,
    dataset_npz_bytes,
    load_generator,
    random_seed,
)
from inkdigits.weights import read_metrics

# Streamlit's file watcher walks every module's __path__; torch.classes answers with an error. It has none.
torch.classes.__path__ = []

SCALE = 5  # 28 px -> 140 px, nearest neighbour so strokes stay crisp
MAX_COUNT = 64
FIX_COMMAND = ("git checkout models/ or reinstall inkdigits (or train your own: inkdigits train --out runs/mine, "
               "then set INKDIGITS_WEIGHTS)")


@st.cache_resource(show_spinner="Loading the generator ...")
def get_generator(path: str):
    torch.set_num_threads(1)  # many users share the CPU; one thread each answers a click in milliseconds
    return load_generator(path)


def big(image: np.ndarray, scale: int = SCALE) -> np.ndarray:
    return im.upscale(image, scale)


def parse_seed(text: str) -> int:
    """Empty: a new random seed on every click. Otherwise a whole number >= 0."""
    text = (text or "").strip()
    if not text:
        return random_seed()
    if not text.isdigit():
        raise InkdigitsError(f"seed must be a whole number >= 0 (got {text!r}), or empty for a new one each time")
    return int(text)


def sidebar(g) -> None:
    st.sidebar.title("inkdigits")
    if g.is_digits:
        trained_on = "MNIST's 60,000 handwritten digits. You pick the digit"
    else:
        source = (g.info.get("data") or {}).get("source", "your images")
        trained_on = f"`{source}` ({g.num_classes} classes: {', '.join(g.classes[:10])}{', ...' if g.num_classes > 10 else ''}). You pick the class"
    st.sidebar.markdown(
        f"A **conditional GAN** trained on {trained_on}; a random *style* vector picks the handwriting. "
        "The same seed always gives the same images."
    )
    n_params = sum(p.numel() for p in g.net.parameters())
    loss = (g.info.get("train") or {}).get("loss", "hinge")
    st.sidebar.markdown(
        f"**Model**: DCGAN-style generator with class-conditional BatchNorm ({n_params / 1e6:.2f} M parameters), "
        f"projection discriminator with spectral norm, {loss} loss, EMA weights; "
        f"trained {g.info.get('epoch', '?')} epochs."
    )
    try:
        metrics = read_metrics(g.path) if g.path else None
    except InkdigitsError as e:
        metrics = None
        st.sidebar.warning(f"No measured metrics: {e}")
    if metrics:
        st.sidebar.markdown("**Measured** (`inkdigits evaluate`, 1000 per class):")
        rows = [("class accuracy", f"{metrics['class_acc']:.2%}"), ("FID (classifier features)", f"{metrics['fid']:.2f}")]
        if "fid_ratio" in metrics:
            rows.append(("FID / real data", f"{metrics['fid_ratio']:.1f}x"))
        rows.append(("diversity (real = 1)", f"{metrics['diversity']:.3f}"))
        if "cas" in metrics:
            rows.append(("train on synthetic, test on real", f"{metrics['cas']:.2%}"))
        st.sidebar.table({"metric": [r[0] for r in rows], "value": [r[1] for r in rows]})
    st.sidebar.caption(f"Weights: `{g.path.name if g.path else '?'}` · see models/MODEL_CARD.md")


def show_result(key: str, g) -> None:
    """Draw the stored result of one tab (if any): title, images, downloads."""
    res = st.session_state.get("results", {}).get(key)
    if not res:
        return
    st.subheader(res["title"])
    if res["layout"] == "cells":
        per_row = min(8, len(res["images"]))
        for start in range(0, len(res["images"]), per_row):
            cols = st.columns(per_row)
            for col, i in zip(cols, range(start, min(start + per_row, len(res["images"]))), strict=False):
                col.image(big(res["images"][i]), caption=res["captions"][i], output_format="PNG")
    else:
        st.image(big(res["picture"], res.get("scale", SCALE)), caption=res["caption"], output_format="PNG")
    c1, c2 = st.columns(2)
    c1.download_button("Download PNG", im.png_bytes(res["picture"], scale=4), file_name=f"{res['file']}.png",
                       mime="image/png", key=f"png-{key}")  # fmt: skip
    c2.download_button("Download batch (.npz)", dataset_npz_bytes(res["images"], res["labels"], g.classes), file_name=f"{res['file']}.npz",
                       mime="application/octet-stream", key=f"npz-{key}")  # fmt: skip


def store(key: str, **result) -> None:
    st.session_state.setdefault("results", {})[key] = result


def checked(*parsers):
    """Run the input parsers; the first bad input is shown inline (not raised) and gives None."""
    try:
        return [parse() for parse in parsers]
    except InkdigitsError as e:
        st.error(str(e))
        return None


def check_count(count) -> int:
    if not 1 <= count <= MAX_COUNT:
        raise InkdigitsError(f"how many must be between 1 and {MAX_COUNT} (got {count})")
    return int(count)


def seed_box(key: str) -> str:
    return st.text_input("Seed", key=f"seed-{key}", placeholder="empty = new images every click",
                         help="The same seed always gives the same images.")  # fmt: skip


def noun(g) -> str:
    return "Digit" if g.is_digits else "Class"


def class_picker(g, where, label: str, index: int, key: str) -> int:
    """A select box of the model's classes by name; returns the class index."""
    return where.selectbox(label, list(range(g.num_classes)), index=min(index, g.num_classes - 1), key=key,
                           format_func=lambda i: g.classes[i])  # fmt: skip


def tab_digit(g) -> None:
    c1, c2, c3 = st.columns([1, 1, 1])
    digit = class_picker(g, c1, noun(g), 7, "digit")
    count = c2.number_input("How many", value=5, step=1, key="count", help=f"1 to {MAX_COUNT}")
    seed_text = seed_box("digit")
    if c3.button("Generate", type="primary", key="go-digit") and (ok := checked(lambda: check_count(count),
                                                                             lambda: parse_seed(seed_text))):
        n, seed = ok
        batch = g.generate([digit] * n, seed=seed)
        name = g.classes[digit]
        store("digit", layout="cells", images=batch, labels=[digit] * n, title=f"{noun(g)} {name} · seed {seed}",
              captions=[f"{name} · #{i + 1}" for i in range(n)], picture=im.grid(batch, ncols=min(n, 8)),
              file=f"{noun(g).lower()}{digit}-seed{seed}")  # fmt: skip
    show_result("digit", g)


def tab_number(g) -> None:
    c1, c2 = st.columns([2, 1])
    what, example = ("Number", "2026") if g.is_digits else ("Text", "".join(g.classes[:4]))
    text = c1.text_input(f"{what} (up to {MAX_NUMBER_DIGITS} {noun(g).lower()} names)", value=example, key="number")
    style = c2.radio("Handwriting", ["One hand", f"New hand per {noun(g).lower()}"], key="number-style",
                     horizontal=True)  # fmt: skip
    seed_text = seed_box("number")
    if st.button("Write it", type="primary", key="go-number") and (ok := checked(lambda: g.parse(text),
                                                                            lambda: parse_seed(seed_text))):
        digits, seed = ok
        batch = g.write_number(digits, seed=seed, same_style=style == "One hand")
        shown = ("" if all(len(c) == 1 for c in g.classes) else " ").join(g.classes[d] for d in digits)
        store("number", layout="picture", images=batch, labels=digits, picture=im.line(batch),
              title=f"{what} {shown} · seed {seed}", caption=f"{shown} ({style.lower()})",
              file=f"{what.lower()}-seed{seed}")  # fmt: skip
    show_result("number", g)


def tab_styles(g) -> None:
    rows = st.slider("Writers (rows)", 1, 8, 3, key="rows")
    seed_text = seed_box("styles")
    every = "digits 0-9" if g.is_digits else "every class"
    if st.button(f"Draw {'0-9' if g.is_digits else 'every class'} in each hand", type="primary", key="go-styles") and (ok := checked(lambda: parse_seed(seed_text))):
        (seed,) = ok
        batch = g.style_sheet(rows, seed=seed)
        store("styles", layout="picture", images=batch, labels=list(range(g.num_classes)) * rows,
              picture=im.grid(batch, ncols=min(g.num_classes, 10)), title=f"{rows} hands × {every} · seed {seed}",
              caption=f"each row: one style written as every {noun(g).lower()}", file=f"hands{rows}-seed{seed}", scale=3)  # fmt: skip
    show_result("styles", g)


def tab_morph(g) -> None:
    c1, c2, c3 = st.columns(3)
    a = class_picker(g, c1, f"From {noun(g).lower()}", 1, "morph-a")
    b = class_picker(g, c2, f"To {noun(g).lower()}", 7, "morph-b")
    frames = c3.slider("Frames", 2, 16, 8, key="frames")
    same = st.checkbox("Keep one handwriting style (morph only the digit)", key="morph-same")
    seed_text = seed_box("morph")
    if st.button("Morph", type="primary", key="go-morph") and (ok := checked(lambda: parse_seed(seed_text))):
        (seed,) = ok
        batch = g.morph(a, b, frames=frames, seed=seed, same_style=same)
        labels = [a if t < 0.5 else b for t in np.linspace(0, 1, len(batch))]
        store("morph", layout="picture", images=batch, labels=labels, picture=im.grid(batch, ncols=len(batch)),
              title=f"Morph {g.classes[a]} → {g.classes[b]} · {frames} frames · seed {seed}",
              caption=f"style and {noun(g).lower()} interpolated",
              file=f"morph{a}to{b}-seed{seed}")  # fmt: skip
    show_result("morph", g)


def main() -> None:
    st.set_page_config(page_title="inkdigits: handwritten digits from a GAN", page_icon="✍️", layout="wide")
    st.title("✍️ inkdigits")
    path = str(os.environ.get("INKDIGITS_WEIGHTS") or default_weights())
    try:
        g = get_generator(path)
    except InkdigitsError as e:
        st.error(f"Cannot load the generator: {e}")
        st.info(f"To fix it: {FIX_COMMAND}")
        st.stop()
    things = "digits" if g.is_digits else "images of your classes"
    st.caption(f"Handwritten {things} drawn by a conditional GAN, on your CPU, in milliseconds.")
    sidebar(g)
    n = noun(g).lower()
    tabs = st.tabs([noun(g), "Write a number" if g.is_digits else "Write", f"Same hand, every {n}", "Morph"])
    for tab, draw in zip(tabs, [tab_digit, tab_number, tab_styles, tab_morph], strict=True):
        with tab:
            draw(g)


if __name__ == "__main__":  # streamlit runs this file as __main__
    main()
