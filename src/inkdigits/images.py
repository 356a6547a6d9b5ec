"""Image grids and PNGs with numpy + Pillow (no torchvision needed)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import InkdigitsError
from .fileio import atomic_write_bytes


def grid(images: np.ndarray, ncols: int = 10, pad: int = 2, value: int = 0) -> np.ndarray:
    """Tile (N,H,W) uint8 images into one (rows*H', cols*W') image, row-major, with ``pad`` px gaps."""
    images = np.asarray(images, dtype=np.uint8)
    n, h, w = images.shape
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    out = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad), value, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y : y + h, x : x + w] = img
    return out


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling, so pixels stay crisp."""
    return np.kron(np.asarray(image, dtype=np.uint8), np.ones((scale, scale), dtype=np.uint8))


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(upscale(image, scale) if scale > 1 else np.asarray(image, np.uint8), mode="L").save(buf, "PNG")
    return buf.getvalue()


def save_png(image: np.ndarray, path: Path, scale: int = 1) -> None:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InkdigitsError(f"{path}: output must be a .png file")
    if path.is_dir():
        raise InkdigitsError(f"{path}: is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, png_bytes(image, scale))
    except OSError as e:
        raise InkdigitsError(f"{path}: cannot write ({e.strerror or e})") from None
