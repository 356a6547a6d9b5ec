"""IDX files, the format MNIST, Fashion-MNIST, KMNIST and EMNIST are distributed in (optionally gzip'd)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from .errors import InkdigitsError
from .fileio import atomic_write_bytes

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip'd), validating magic number, dimensions and size."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise InkdigitsError(f"{path}: cannot read IDX file ({e})") from None
    if len(raw) < 4:
        raise InkdigitsError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code not in _IDX_DTYPES or not 1 <= ndim <= 3:
        raise InkdigitsError(f"{path}: bad IDX magic number 0x{raw[:4].hex()} (want 0x00000801 or 0x00000803)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InkdigitsError(f"{path}: IDX header truncated")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != expected:
        raise InkdigitsError(
            f"{path}: IDX header says {'x'.join(map(str, dims))} = {expected} bytes, file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=_IDX_DTYPES[dtype_code], offset=header).reshape(dims).copy()


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an uncompressed IDX file (MNIST's layout)."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    atomic_write_bytes(Path(path), header + a.tobytes())


def find_idx(folder: Path, stem: str, required: bool = True) -> Path | None:
    """``stem`` or ``stem.gz`` in ``folder``, also with a prefix (EMNIST's ``emnist-letters-train-...``) or
    a dot before ``idx`` (some mirrors); None (or an error if ``required``) when absent."""
    variants = [stem, stem.replace("-idx", ".idx")]
    for name in variants + [v + ".gz" for v in variants]:
        if (folder / name).is_file():
            return folder / name
    found = sorted({p for v in variants for p in folder.glob(f"*{v}*") if p.name.endswith((v, v + ".gz"))})
    if len(found) > 1:
        raise InkdigitsError(f"{folder}: several files match {stem} ({', '.join(p.name for p in found)}); keep one")
    if found:
        return found[0]
    if required:
        raise InkdigitsError(f"{folder}: no {stem}[.gz] found (expected MNIST's IDX file names)")
    return None


def read_idx_dir(folder: Path) -> dict[str, np.ndarray]:
    """The train pair (required) and the t10k pair (if present) of an IDX folder, checked for shape."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InkdigitsError(f"{folder}: not a directory")
    arrays = {}
    for split in ("train", "test"):
        # EMNIST calls its test split "test" where MNIST says "t10k".
        stems = [(IDX_FILES[f"x_{split}"], IDX_FILES[f"y_{split}"])]
        if split == "test":
            stems.append((stems[0][0].replace("t10k", "test"), stems[0][1].replace("t10k", "test")))
        found = [(xp, stem_y) for stem_x, stem_y in stems if (xp := find_idx(folder, stem_x, required=False))]
        if not found:
            if split == "train":
                find_idx(folder, stems[0][0])  # raises the "no train-images..." error
            continue
        xp, yp = found[0][0], find_idx(folder, found[0][1])
        x, y = read_idx(xp), read_idx(yp)
        if x.ndim != 3 or y.ndim != 1:
            raise InkdigitsError(f"{folder}: {split} images must be 3-D and labels 1-D, got {x.shape} and {y.shape}")
        if len(x) != len(y):
            raise InkdigitsError(f"{folder}: {len(x)} {split} images but {len(y)} labels")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    return arrays


def arrays_from_idx_dir(folder: Path) -> dict[str, np.ndarray]:
    """An MNIST-shaped IDX folder (all four files, 28x28, labels 0-9), for the MNIST cache."""
    arrays = read_idx_dir(folder)
    if "x_test" not in arrays:
        raise InkdigitsError(f"{folder}: no {IDX_FILES['x_test']}[.gz] found (expected MNIST's IDX file names)")
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.shape[1:] != (28, 28):
            raise InkdigitsError(f"{folder}: {split} images are {x.shape[1]}x{x.shape[2]}, need 28x28")
        if len(y) and y.max() > 9:
            raise InkdigitsError(f"{folder}: {split} labels must be 0-9, found {int(y.max())}")
    return arrays
