"""inkdigits web app: ``inkdigits app`` (any install) or ``streamlit run app.py`` (a checkout, Streamlit Cloud).

It imports the sampling API and what the API itself is made of (its limits, the line composer's constants, the
file formats of the downloads), never training code or datasets. The model loads once per server; each
user's results live in their own st.session_state, so they survive reruns when another widget changes. Each
tab is a fragment (a click reruns only that tab), and every result puts its inputs and the seed it used into
the page's address: opening that address pre-fills the tab and draws the same images again.
"""

from __future__ import annotations

import os

import numpy as np
import streamlit as st
import torch

from inkdigits import images as im
from inkdigits.compose import MAX_NUMBER_DIGITS
from inkdigits.config import METRICS_PER_CLASS
from inkdigits.errors import InkdigitsError
from inkdigits.formats import dataset_npz_bytes, numbers_npz_bytes
from inkdigits.limits import NEATNESS, SPACING
from inkdigits.resources import default_weights
from inkdigits.sample import load_generator, random_seed
from inkdigits.share_link import (
    APP_FRAMES,
    APP_ROWS,
    COUNT,
    HANDS,
    link_values,
    parse_seed_text,
    read_link,
)
from inkdigits.weights import read_metrics

# Streamlit's file watcher walks every module's __path__; torch.classes answers with an error. It has none.
torch.classes.__path__ = []

SCALE = 5  # 28 px -> 140 px, nearest neighbour so strokes stay crisp
FIX_COMMAND = ("git checkout models/ or reinstall inkdigits (or train your own: inkdigits train --out runs/mine, "
               "then set INKDIGITS_WEIGHTS)")


@st.cache_resource(show_spinner="Loading the generator ...")
def get_generator(path: str):
    torch.set_num_threads(1)  # many users share the CPU; one thread each answers a click in milliseconds
    return load_generator(path)


def parse_seed(text: str) -> int:
    """Empty: a new random seed on every click. Otherwise a whole number >= 0."""
    try:
        seed = parse_seed_text(text)
    except ValueError as e:
        raise InkdigitsError(str(e)) from None
    return random_seed() if seed is None else seed


def noun(g) -> str:
    return "Digit" if g.is_digits else "Class"


def tab_labels(g) -> dict[str, str]:
    n = noun(g).lower()
    return {"digit": noun(g), "number": "Write a number" if g.is_digits else "Write",
            "styles": f"Same hand, every {n}", "morph": "Morph"}  # fmt: skip


def sidebar(g) -> None:
    st.sidebar.title("inkdigits")
    if g.is_digits:
        trained_on = "MNIST's 60,000 handwritten digits. You pick the digit"
    else:
        source = (g.info.get("data") or {}).get("source", "your images")
        shown = ", ".join(g.classes[:10]) + (", ..." if g.num_classes > 10 else "")
        trained_on = f"`{source}` ({g.num_classes} classes: {shown}). You pick the class"
    st.sidebar.markdown(f"A **conditional GAN** trained on {trained_on}; a random *style* vector picks the "
                        "handwriting. The same seed always gives the same images.")  # fmt: skip
    n_params = sum(p.numel() for p in g.net.parameters())
    loss = (g.info.get("train") or {}).get("loss", "hinge")
    epochs = g.info.get("epoch")  # a float for runs scored between epochs
    length = f"trained {epochs:g} epochs" if isinstance(epochs, (int, float)) else "training length unknown"
    st.sidebar.markdown(
        f"**Model**: DCGAN-style generator with class-conditional BatchNorm ({n_params / 1e6:.2f} M parameters), "
        f"projection discriminator with spectral norm, {loss} loss, EMA weights; {length}."
    )
    try:
        metrics = read_metrics(g.path) if g.path else None
    except InkdigitsError as e:
        metrics = None
        st.sidebar.warning(f"No measured metrics: {e}")
    if metrics:
        st.sidebar.markdown(f"**Measured** (`inkdigits evaluate`, {METRICS_PER_CLASS} per class):")
        rows = [("class accuracy", f"{metrics['class_acc']:.2%}"), ("FID (classifier features)", f"{metrics['fid']:.2f}")]
        if "fid_ratio" in metrics:
            rows.append(("FID / real data", f"{metrics['fid_ratio']:.1f}x"))
        rows.append(("diversity (real = 1)", f"{metrics['diversity']:.3f}"))
        for name in ("precision", "recall"):
            if name in metrics:
                real = metrics.get("reference", {}).get(name)
                rows.append((name + " (real)", f"{metrics[name]:.3f}" + (f" ({real:.3f})" if real else "")))
        if "cas" in metrics:
            rows.append(("train on synthetic, test on real", f"{metrics['cas']:.2%}"))
        st.sidebar.table({"metric": [r[0] for r in rows], "value": [r[1] for r in rows]})
    st.sidebar.slider("Neatness", NEATNESS.lo, NEATNESS.hi, NEATNESS.default, 0.05, key="neatness",
                      help=f"{NEATNESS.what}. Neater is more legible and less varied, below 0 wilder and more varied "
                           "(models/MODEL_CARD.md measures it); at 1 every image of a class is the same.")  # fmt: skip
    st.sidebar.caption(f"Weights: `{g.path.name if g.path else '?'}` · see models/MODEL_CARD.md")


# --------------------------------------------------------------------------- share links


def apply_link(g) -> str | None:
    """Once per session: pre-fill the linked tab's widgets from the address (every value checked and brought
    into range first, share_link.py); returns that tab's key. Values that were changed or dropped get a note."""
    if st.session_state.get("link-read"):
        return st.session_state.get("link-tab")
    st.session_state["link-read"] = True
    tab, values, notes = read_link(st.query_params.to_dict(), g.classes)
    st.session_state.update(values)
    if notes:
        st.caption("This link had values the app cannot use as they were: " + "; ".join(notes) + ".")
    if tab is not None:
        st.session_state["link-tab"] = st.session_state["autorun"] = tab
    return tab


def write_link(tab: str, seed: int) -> None:
    """Put this result's inputs and the seed it used into the address."""
    st.query_params.from_dict(link_values(tab, st.session_state, seed))


def clicked(label: str, tab: str, where=st) -> bool:
    """The tab's button was clicked, or the page was opened with a link to this tab."""
    pressed = where.button(label, type="primary", key=f"go-{tab}")
    if st.session_state.get("autorun") == tab:
        del st.session_state["autorun"]
        return True
    return pressed


# --------------------------------------------------------------------------- results


def store(key: str, seed: int, picture: np.ndarray, npz: bytes, **result) -> None:
    """Keep a result with its download bytes (computed once, here) and share its inputs in the address."""
    result.update(picture=picture, png=im.png_bytes(picture, scale=4), npz=npz)
    st.session_state.setdefault("results", {})[key] = result
    write_link(key, seed)


def show_result(key: str) -> None:
    res = st.session_state.get("results", {}).get(key)
    if not res:
        return
    st.subheader(res["title"])
    if res["layout"] == "cells":
        per_row = min(8, len(res["images"]))
        for start in range(0, len(res["images"]), per_row):
            cols = st.columns(per_row)
            for col, i in zip(cols, range(start, min(start + per_row, len(res["images"]))), strict=False):
                col.image(im.upscale(res["images"][i], SCALE), caption=res["captions"][i], output_format="PNG")
    else:
        st.image(im.upscale(res["picture"], res.get("scale", SCALE)), caption=res["caption"], output_format="PNG")
    c1, c2 = st.columns(2)
    c1.download_button("Download PNG", res["png"], file_name=f"{res['file']}.png", mime="image/png",
                       key=f"png-{key}", on_click="ignore")  # fmt: skip
    c2.download_button("Download batch (.npz)", res["npz"], file_name=f"{res['file']}.npz",
                       mime="application/octet-stream", key=f"npz-{key}", on_click="ignore")  # fmt: skip
    st.caption("Share: this page's address now reproduces this result.")


def neatness() -> float:
    return float(st.session_state.get("neatness", 0.0))


def failed(key: str, error: InkdigitsError) -> None:
    """Every tab handles a bad input the same way: the error inline, the tab's old result and its address gone
    (what is shown, and what a shared address reproduces, is never an older input's result)."""
    st.session_state.get("results", {}).pop(key, None)
    if st.query_params.get("tab") == key:
        st.query_params.clear()
    st.error(str(error))


def checked(key: str, *parsers):
    """Run the input parsers; the first bad input fails the tab (``failed``) and gives None."""
    try:
        return [parse() for parse in parsers]
    except InkdigitsError as e:
        failed(key, e)
        return None


def check_count(count) -> int:
    try:
        return COUNT.check(count)
    except InkdigitsError:
        raise InkdigitsError(f"how many must be {COUNT.range} (got {count})") from None


def same_hand_note(n: int) -> None:
    """Neatness 1 is the single most typical hand: say so where it draws several identical images."""
    if neatness() >= NEATNESS.hi and n > 1:
        st.info("Neatness 1 draws the single most typical hand: these images are all the same. "
                "Lower it in the sidebar for different hands.")


def seed_box(key: str) -> str:
    return st.text_input("Seed", key=f"seed-{key}", placeholder="empty = new images every click",
                         help="The same seed always gives the same images.")  # fmt: skip


def class_picker(g, where, label: str, index: int, key: str) -> int:
    """A select box of the model's classes by name; returns the class index."""
    if key in st.session_state and not 0 <= st.session_state[key] < g.num_classes:
        del st.session_state[key]  # a link to a class this model does not have
    return where.selectbox(label, list(range(g.num_classes)), index=min(index, g.num_classes - 1), key=key,
                           format_func=lambda i: g.classes[i])  # fmt: skip


# --------------------------------------------------------------------------- tabs


@st.fragment
def tab_digit(g) -> None:
    c1, c2, c3 = st.columns([1, 1, 1])
    digit = class_picker(g, c1, noun(g), 7, "digit")
    count = c2.number_input("How many", value=COUNT.default, step=1, key="count", help=f"{COUNT.lo} to {COUNT.hi}")
    seed_text = seed_box("digit")
    if clicked("Generate", "digit", c3) and (
        ok := checked("digit", lambda: check_count(count), lambda: parse_seed(seed_text))
    ):
        n, seed = ok
        batch = g.generate([digit] * n, seed=seed, neatness=neatness())
        name = g.classes[digit]
        store("digit", seed, im.grid(batch, ncols=min(n, 8)), dataset_npz_bytes(batch, [digit] * n, g.classes),
              layout="cells", images=batch, labels=[digit] * n, title=f"{noun(g)} {name} · seed {seed}",
              captions=[f"{name} · #{i + 1}" for i in range(n)], file=f"{noun(g).lower()}{digit}-seed{seed}")  # fmt: skip
    if "digit" in st.session_state.get("results", {}):
        same_hand_note(len(st.session_state["results"]["digit"]["images"]))
    show_result("digit")


@st.fragment
def tab_number(g) -> None:
    c1, c2, c3 = st.columns([2, 1, 1])
    what, example = ("Number", "2026") if g.is_digits else ("Text", "".join(g.classes[:4]))
    text = c1.text_input(f"{what} (up to {MAX_NUMBER_DIGITS} {noun(g).lower()}s; - . / : and space too)",
                         value=example, key="number")  # fmt: skip
    hand_labels = dict(zip(HANDS, ["One hand", f"New hand per {noun(g).lower()}"], strict=True))
    hands = c2.radio("Handwriting", HANDS, key="number-hands", format_func=hand_labels.get)
    spacing = c3.slider("Spacing", SPACING.lo, SPACING.hi, SPACING.default, 0.25, key="spacing", help=SPACING.what)
    seed_text = seed_box("number")
    if clicked("Write it", "number") and (ok := checked("number", lambda: parse_seed(seed_text))):
        (seed,) = ok
        try:
            line, boxes = g.write(text, seed=seed, new_hand_per_digit=hands != HANDS[0], spacing=spacing,
                                  neatness=neatness())  # fmt: skip
        except InkdigitsError as e:
            failed("number", e)
            return
        shown = " ".join(text.split())
        store("number", seed, line, numbers_npz_bytes([line], [shown], [boxes], g.classes), layout="picture",
              boxes=boxes, labels=[g.classes.index(b[4]) for b in boxes if b[4] in g.classes],
              title=f"{what} {shown} · seed {seed}", caption=f"{shown} ({hand_labels[hands].lower()})",
              file=f"{what.lower()}-seed{seed}", scale=4)  # fmt: skip
    show_result("number")


@st.fragment
def tab_styles(g) -> None:
    rows = st.slider("Writers (rows)", APP_ROWS.lo, APP_ROWS.hi, APP_ROWS.default, key="rows")
    seed_text = seed_box("styles")
    every = "digits 0-9" if g.is_digits else "every class"
    if clicked(f"Draw {'0-9' if g.is_digits else 'every class'} in each hand", "styles") and (
        ok := checked("styles", lambda: parse_seed(seed_text))
    ):
        (seed,) = ok
        batch = g.style_sheet(rows, seed=seed, neatness=neatness())
        labels = list(range(g.num_classes)) * rows
        store("styles", seed, im.grid(batch, ncols=min(g.num_classes, 10)), dataset_npz_bytes(batch, labels, g.classes),
              layout="picture", images=batch, labels=labels, title=f"{rows} hands × {every} · seed {seed}",
              caption=f"each row: one style written as every {noun(g).lower()}", file=f"hands{rows}-seed{seed}", scale=3,
              rows=rows)  # fmt: skip
    if "styles" in st.session_state.get("results", {}):
        same_hand_note(st.session_state["results"]["styles"]["rows"])
    show_result("styles")


@st.fragment
def tab_morph(g) -> None:
    c1, c2, c3 = st.columns(3)
    a = class_picker(g, c1, f"From {noun(g).lower()}", 1, "morph-a")
    b = class_picker(g, c2, f"To {noun(g).lower()}", 7, "morph-b")
    frames = c3.slider("Frames", APP_FRAMES.lo, APP_FRAMES.hi, APP_FRAMES.default, key="frames")
    same = st.checkbox(f"Keep one handwriting style (morph only the {noun(g).lower()})", key="morph-same")
    seed_text = seed_box("morph")
    if clicked("Morph", "morph") and (ok := checked("morph", lambda: parse_seed(seed_text))):
        (seed,) = ok
        batch = g.morph(a, b, frames=frames, seed=seed, same_style=same, neatness=neatness())
        labels = [a if t < 0.5 else b for t in np.linspace(0, 1, len(batch))]
        store("morph", seed, im.grid(batch, ncols=len(batch)), dataset_npz_bytes(batch, labels, g.classes),
              layout="picture", images=batch, labels=labels,
              title=f"Morph {g.classes[a]} → {g.classes[b]} · {frames} frames · seed {seed}",
              caption=f"{noun(g).lower()} interpolated, one style throughout" if same else
              f"style and {noun(g).lower()} interpolated", file=f"morph{a}to{b}-seed{seed}")  # fmt: skip
    show_result("morph")


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
    linked = apply_link(g)  # before any widget exists: it pre-fills them
    sidebar(g)
    labels = tab_labels(g)
    tabs = st.tabs(list(labels.values()), default=labels[linked] if linked else None)
    for tab, draw in zip(tabs, [tab_digit, tab_number, tab_styles, tab_morph], strict=True):
        with tab:
            draw(g)


if __name__ == "__main__":  # streamlit runs this file as __main__
    main()
