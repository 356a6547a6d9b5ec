"""File formats, one home: what inkdigits writes (labelled batches and written numbers as .npz, datasets as
.npz or IDX) and how it reads an .npz it is handed (plain arrays only, never a pickle).

The sampling API (sample.py), the numbers export (numbers.py), the app's downloads and the data readers
(datasets.py, evaluate.py) all use these; the IDX layout itself is idx.py's.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from . import idx
from .errors import InkdigitsError
from .fileio import atomic_write_bytes
from .limits import NEATNESS


def dataset_npz_bytes(images: np.ndarray, labels, classes: list[str] | None = None) -> bytes:
    """A labelled batch as ``.npz`` bytes: ``images`` (N,S,S) uint8, ``labels`` (N,) uint8 and, when given,
    ``classes`` (K,) the names of labels 0..K-1 (a plain unicode array: no pickle needed to read it)."""
    buf = io.BytesIO()
    arrays = {"images": np.asarray(images, dtype=np.uint8), "labels": np.asarray(labels, dtype=np.uint8)}
    if classes is not None:
        arrays["classes"] = np.asarray(classes, dtype=str)
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def numbers_npz_bytes(images: list[np.ndarray], labels: list[str], boxes: list[list], classes: list[str],
                      per_digit_hands: list[bool] | None = None) -> bytes:  # fmt: skip
    """Written lines as ``.npz`` bytes, every array plain (no pickle needed to read them):
    ``images`` (N, H, W) uint8 zero-padded at the right and bottom; ``heights`` and ``widths`` (N,) of each line;
    ``labels`` (N,) the texts; ``boxes`` (N, M, 4) int32, each line's character boxes (x0, y0, x1, y1,
    end-exclusive; rows of -1 pad lines with fewer than M); ``box_chars`` (N, M) the character of each box ('' for
    padding); ``classes`` (K,) the model's class names; ``per_digit_hands`` (N,) bool, whether each line has a new
    hand for every digit (False: one hand)."""
    heights = np.array([im.shape[0] for im in images])
    widths = np.array([im.shape[1] for im in images])
    padded = np.zeros((len(images), heights.max(), widths.max()), np.uint8)
    for k, im in enumerate(images):
        padded[k, : im.shape[0], : im.shape[1]] = im
    most = max((len(b) for b in boxes), default=0)
    box_array = np.full((len(images), most, 4), -1, np.int32)
    box_chars = np.full((len(images), most), "", dtype="<U1")
    for k, line in enumerate(boxes):
        for j, (x0, y0, x1, y1, ch) in enumerate(line):
            box_array[k, j] = (x0, y0, x1, y1)
            box_chars[k, j] = ch
    buf = io.BytesIO()
    np.savez_compressed(buf, images=padded, heights=heights, widths=widths, labels=np.array(labels, dtype=str),
                        boxes=box_array, box_chars=box_chars, classes=np.array(classes, dtype=str),
                        per_digit_hands=np.array(per_digit_hands or [False] * len(images), dtype=bool))  # fmt: skip
    return buf.getvalue()


def export_dataset(g, per_class: int, seed: int, out: Path, fmt: str = "npz",
                   neatness: float = NEATNESS.default) -> list[Path]:  # fmt: skip
    """Write a labelled synthetic dataset: npz (images, labels, classes) or MNIST-layout IDX files (with a
    classes.txt naming the labels, which `inkdigits train --data` reads back)."""
    labels = np.repeat(np.arange(g.num_classes, dtype=np.uint8), per_class)
    images = g.generate(labels.astype(np.int64), seed=seed, neatness=neatness)
    out = Path(out)
    try:
        if fmt == "idx":
            if out.exists() and not out.is_dir():
                raise InkdigitsError(f"{out}: --format idx writes a folder, and this is a file")
            paths = [out / idx.IDX_FILES["x_train"], out / idx.IDX_FILES["y_train"]]
            idx.write_idx(paths[0], images)
            idx.write_idx(paths[1], labels)
            atomic_write_bytes(out / "classes.txt", ("\n".join(g.classes) + "\n").encode())
            return [*paths, out / "classes.txt"]
        if out.suffix != ".npz":
            raise InkdigitsError(f"{out}: --format npz writes a .npz file")
        if out.is_dir():
            raise InkdigitsError(f"{out}: is a directory")
        atomic_write_bytes(out, dataset_npz_bytes(images, labels, g.classes))
        return [out]
    except OSError as e:
        raise InkdigitsError(f"{out}: cannot write ({e.strerror or e})") from None


def check_labelled(path: Path, images: np.ndarray, labels: np.ndarray, split: str = "", size: int | None = None,
                   num_classes: int | None = None) -> None:  # fmt: skip
    """Images (N, H, W) uint8 and labels (N,) integers, as every labelled .npz holds them (a data set's splits,
    a samples file); ``size``: H = W = size; ``num_classes``: labels in 0..K-1. One line naming the file."""
    what = f"{split} images" if split else "images"
    shape = f"(N, {size}, {size})" if size else "(N, H, W)"
    if images.ndim != 3 or (size and images.shape[1:] != (size, size)):
        raise InkdigitsError(f"{path}: {what} must have shape {shape}, got {images.shape}")
    if images.dtype != np.uint8:
        raise InkdigitsError(f"{path}: {what} must be uint8 (0-255, white on black), got {images.dtype}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise InkdigitsError(f"{path}: {len(images)} {what} but labels of shape {labels.shape} (need ({len(images)},))")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InkdigitsError(f"{path}: labels must be integers, got {labels.dtype}")
    if num_classes is not None and len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise InkdigitsError(f"{path}: labels must be 0-{num_classes - 1}, found {int(labels.min())}..{int(labels.max())}")


def npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, never unpickling anything; one line naming the file for anything amiss."""
    path = Path(path)
    if not path.is_file():
        raise InkdigitsError(f"{path}: file not found")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic not in (b"PK\x03\x04", b"PK\x05\x06"):  # an .npz is a zip archive
            raise InkdigitsError(f"{path}: not an .npz file (not a zip archive of arrays)")
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except InkdigitsError:
        raise
    except ValueError as e:
        if "pickle" in str(e):
            raise InkdigitsError(f"{path}: holds pickled objects, which are never loaded; save plain arrays") from None
        raise InkdigitsError(f"{path}: not a readable .npz file ({first_line(e)})") from None
    except Exception as e:
        raise InkdigitsError(f"{path}: not a readable .npz file ({type(e).__name__}: {first_line(e)})") from None


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
