"""A labelled dataset of written numbers for OCR: ``inkdigits export --numbers N --out numbers/``.

Each item is a random string (``--length 4-10`` digits) or one drawn from a ``--pattern`` such as
``ddd-dddd`` or ``dd/dd/dddd`` (``d``: a random digit; separators are kept), written by one hand with the
composer. The folder gets ``NNNNNN.png`` files (or one ``images.npz``: zero-padded images, their heights and
widths, and the texts) and ``labels.jsonl`` (file or index, text, per-character boxes). Items are made by a
pool of worker processes; the folder appears only once complete (written beside it, then renamed).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .compose import MAX_LINE, MAX_NUMBER_DIGITS, SEPARATORS
from .errors import InkdigitsError


def parse_length(text: str) -> tuple[int, int]:
    """'4-10' -> (4, 10); '6' -> (6, 6); bounds 1..MAX_NUMBER_DIGITS."""
    try:
        lo, _, hi = text.partition("-")
        lo, hi = int(lo), int(hi or lo)
    except ValueError:
        raise InkdigitsError(f"--length {text!r}: expected N or N-M, e.g. 4-10") from None
    if not 1 <= lo <= hi <= MAX_NUMBER_DIGITS:
        raise InkdigitsError(f"--length {text!r}: lengths must be 1 to {MAX_NUMBER_DIGITS} digits, the smaller first")
    return lo, hi


def check_pattern(pattern: str) -> str:
    bad = sorted({ch for ch in pattern if ch != "d" and ch not in SEPARATORS})
    if bad or "d" not in pattern:
        found = f" (found {''.join(bad)!r})" if bad else ""
        raise InkdigitsError(f"--pattern {pattern!r}: use d for a digit and the separators - . / : and space{found}")
    if pattern.count("d") > MAX_NUMBER_DIGITS or len(pattern) > MAX_LINE:
        raise InkdigitsError(f"--pattern {pattern!r}: at most {MAX_NUMBER_DIGITS} digits and {MAX_LINE} characters")
    return pattern


def texts(n: int, seed: int, length: tuple[int, int] = (4, 10), pattern: str | None = None) -> list[str]:
    rng = np.random.default_rng([seed, 1])
    if pattern:
        return ["".join(str(rng.integers(10)) if ch == "d" else ch for ch in pattern) for _ in range(n)]
    return ["".join(map(str, rng.integers(0, 10, rng.integers(length[0], length[1] + 1)))) for _ in range(n)]


def item_seed(seed: int, i: int) -> int:
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


_worker: dict = {}


def _init(weights, options):
    import torch

    from .sample import load_generator

    torch.set_num_threads(1)  # the pool uses the cores; each worker one thread
    _worker.update(g=load_generator(weights), options=options)


def _make(job):
    i, text, seed = job
    image, boxes = _worker["g"].write(text, seed=seed, **_worker["options"])
    return i, image, boxes


def export_numbers(weights, n: int, seed: int, out: Path, length=(4, 10), pattern=None, fmt="png", workers=None,
                   options: dict | None = None, progress: bool = True) -> dict:  # fmt: skip
    """Write the dataset into the new folder ``out``; returns counts and timing."""
    from tqdm import tqdm

    from . import images as im

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InkdigitsError(f"{out}: already exists and is not an empty folder; pick a new --out")
    workers = workers or os.cpu_count() or 1
    jobs = [(i, t, item_seed(seed, i)) for i, t in enumerate(texts(n, seed, length, pattern))]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:
        raise InkdigitsError(f"{out}: cannot write there ({e.strerror or e})") from None
    start, results, pool = time.perf_counter(), [None] * n, None
    try:
        if workers == 1:
            _init(weights, options or {})
            made = map(_make, jobs)
        else:
            import multiprocessing as mp

            pool = mp.get_context("fork").Pool(workers, _init, (weights, options or {}))
            made = pool.imap_unordered(_make, jobs, chunksize=16)
        bar = tqdm(total=n, desc="numbers", unit="img", disable=not progress, mininterval=0.5)
        for i, image, boxes in made:
            results[i] = (image if fmt == "npz" else None, [list(b) for b in boxes])
            if fmt == "png":
                (tmp / f"{i:06d}.png").write_bytes(im.png_bytes(image))
            bar.update(1)
        if pool is not None:
            pool.close()
            pool.join()
        bar.close()
        with open(tmp / "labels.jsonl", "w") as labels:
            for i, text, _ in jobs:
                name = {"file": f"{i:06d}.png"} if fmt == "png" else {"index": i}
                labels.write(json.dumps({**name, "text": text, "boxes": results[i][1]}) + "\n")
        if fmt == "npz":
            write_npz(tmp / "images.npz", [r[0] for r in results], [t for _, t, _ in jobs])
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        if pool is not None:  # stop the workers now, not whenever the pool is collected
            pool.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.perf_counter() - start
    return {"n": n, "seconds": seconds, "images_per_s": n / seconds, "workers": workers}


def write_npz(path: Path, images: list[np.ndarray], labels: list[str]) -> None:
    path.write_bytes(numbers_npz_bytes(images, labels))


def numbers_npz_bytes(images: list[np.ndarray], labels: list[str]) -> bytes:
    """Written lines as ``.npz`` bytes: ``images`` (N, H, W) uint8 zero-padded at the right and bottom,
    ``heights`` and ``widths`` (N,) of each line, ``labels`` (N,) the texts (a plain unicode array)."""
    heights = np.array([im.shape[0] for im in images])
    widths = np.array([im.shape[1] for im in images])
    padded = np.zeros((len(images), heights.max(), widths.max()), np.uint8)
    for k, im in enumerate(images):
        padded[k, : im.shape[0], : im.shape[1]] = im
    buf = io.BytesIO()
    np.savez_compressed(buf, images=padded, heights=heights, widths=widths, labels=np.array(labels, dtype=str))
    return buf.getvalue()
