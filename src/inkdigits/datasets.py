"""Training data from any small labelled grayscale image set; MNIST is the default.

    load(DataSpec("mnist"))                    MNIST from the verified cache (data.py)
    load(DataSpec("path/to/idx-folder"))       train-images-idx3-ubyte[.gz] + labels (+ t10k-* if present):
                                               Fashion-MNIST, KMNIST, EMNIST (prefixed names are found too)
    load(DataSpec("path/to/set.npz"))          images (N,H,W) uint8 + labels (N,) (+ x_test, y_test)
    load(DataSpec("path/to/folder"))           one subfolder per class of PNG/JPEG files, made grayscale

Labels are remapped to 0..K-1 in sorted order of the values present (EMNIST letters' 1..26 become 0..25);
class names come from the subfolders, a classes.txt beside the data, DataSpec.classes, or the label values.
A source without a test split gives up ``test_fraction`` of its images (after a fixed shuffle) as one.
Every problem is one InkdigitsError naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import CLASSES, DIGITS, IMAGE_SIZES, DataSpec
from .data import load_cached_arrays
from .errors import InkdigitsError
from .formats import check_labelled, first_line, npz_arrays
from .idx import read_idx_dir

if TYPE_CHECKING:
    import torch

@dataclass
class Dataset:
    """A labelled image set in memory as uint8 tensors (47 MB for all of MNIST); normalise per batch."""

    x_train: torch.Tensor  # (N, S, S) uint8, white ink on black
    y_train: torch.Tensor  # (N,) int64, 0..K-1
    x_test: torch.Tensor
    y_test: torch.Tensor
    source: str
    classes: list[str] = field(default_factory=lambda: list(DIGITS))  # names of 0..K-1


def load_mnist(folder: Path | None = None, fetch_if_needed: bool = True, log=print) -> Dataset:
    import torch

    arrays, meta = load_cached_arrays(folder, fetch_if_needed, log)
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    return Dataset(t["x_train"], t["y_train"].long(), t["x_test"], t["y_test"].long(), meta.get("source", "?"))


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
MIN_SIDE, MAX_SIDE = 8, 1024  # pixels: a training image is resized to 16..64, so nothing outside this is one
MAX_PIXELS = MAX_SIDE * MAX_SIDE


def load(spec: DataSpec, log=print, fetch_if_needed: bool = True) -> Dataset:
    """The dataset ``spec`` describes, at ``spec.image_size`` (or its own size), as tensors."""
    import torch

    if spec.source == "mnist":
        dataset = load_mnist(fetch_if_needed=fetch_if_needed, log=log)
        if spec.image_size in (None, 28) and not spec.transpose and spec.classes is None:
            return dataset
        arrays = {k: getattr(dataset, k).numpy() for k in ("x_train", "y_train", "x_test", "y_test")}
        names = None
    else:
        arrays, names = read_source(Path(spec.source))
    where = spec.source
    for key in ("x_train", "x_test"):
        if arrays.get(key) is not None:
            check_image_shape(arrays[key], where)
    arrays, names = remap_labels(arrays, names, spec.classes, where)
    if spec.transpose:  # EMNIST stores each image transposed
        arrays["x_train"] = arrays["x_train"].transpose(0, 2, 1)
        arrays["x_test"] = arrays["x_test"].transpose(0, 2, 1) if "x_test" in arrays else None
    if arrays.get("x_test") is None:
        arrays = hold_out_test(arrays, spec.test_fraction, where, log)
    size = choose_size(arrays["x_train"].shape[1:], spec.image_size, where, log)
    t = {k: torch.from_numpy(np.ascontiguousarray(resize(v, size) if k.startswith("x") else v.astype(np.int64)))
         for k, v in arrays.items()}  # fmt: skip
    return Dataset(t["x_train"], t["y_train"], t["x_test"], t["y_test"], where, names)


def read_source(path: Path) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """(arrays with original labels, class names if the source names them)."""
    if not path.exists():
        raise InkdigitsError(f"{path}: no such file or folder (--data takes mnist, an IDX folder, an .npz or a folder)")
    if path.is_file():
        if path.suffix != ".npz":
            raise InkdigitsError(f"{path}: --data takes mnist, a folder or an .npz file")
        arrays = read_npz(path)
        names = arrays.pop("classes", None)
        return arrays, [str(n) for n in names] if names is not None else read_classes_txt(path.parent / "classes.txt")
    if any(p.name.endswith(("idx3-ubyte", "idx3-ubyte.gz")) for p in path.iterdir()):
        return read_idx_dir(path), read_classes_txt(path / "classes.txt")
    return read_class_folders(path)


def read_classes_txt(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if not names:
        raise InkdigitsError(f"{path}: lists no class names")
    return names


def read_npz(path: Path) -> dict[str, np.ndarray]:
    arrays = npz_arrays(path)
    x = arrays.get("images", arrays.get("x_train"))
    y = arrays.get("labels", arrays.get("y_train"))
    if x is None or y is None:
        raise InkdigitsError(f"{path}: needs arrays 'images' and 'labels' (or x_train, y_train), found {sorted(arrays)}")
    out = {"x_train": x, "y_train": y}
    if "classes" in arrays:  # names of the labels 0..K-1, as inkdigits export writes them
        out["classes"] = arrays["classes"]
    if "x_test" in arrays or "y_test" in arrays:
        if "x_test" not in arrays or "y_test" not in arrays:
            raise InkdigitsError(f"{path}: x_test and y_test come together")
        out.update(x_test=arrays["x_test"], y_test=arrays["y_test"])
    for split in ("train", "test"):
        if f"x_{split}" not in out:
            continue
        check_labelled(path, out[f"x_{split}"], out[f"y_{split}"], split)
    return out


def read_class_folders(folder: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    from PIL import Image, UnidentifiedImageError

    folders = sorted(p for p in folder.iterdir() if p.is_dir())
    dots = [p for p in folders if set(p.name) == {"."}]
    if dots:
        raise InkdigitsError(f"{dots[0]}: '{dots[0].name}' cannot be a class name; rename the folder")
    classes = [p for p in folders if not p.name.startswith(".")]  # hidden folders (.git, .ipynb_checkpoints)
    if not classes:
        raise InkdigitsError(f"{folder}: empty folder (expected one subfolder of images per class, or IDX files)")
    images, labels, size = [], [], None
    for label, sub in enumerate(classes):
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InkdigitsError(f"{sub}: class '{sub.name}' has no images (.png, .jpg, .jpeg)")
        for path in files:
            try:
                with Image.open(path) as img:
                    if img.width * img.height > MAX_PIXELS:  # checked before decoding: a small file can unpack huge
                        raise InkdigitsError(f"{path}: {img.width}x{img.height} is too large for a training image "
                                             f"(at most {MAX_SIDE}x{MAX_SIDE})")  # fmt: skip
                    img.load()
                    gray = grayscale(img)
            except InkdigitsError:
                raise
            except Image.DecompressionBombError:
                raise InkdigitsError(f"{path}: is too large for a training image (at most {MAX_SIDE}x{MAX_SIDE}; "
                                     "Pillow refused to decode it)") from None  # fmt: skip
            except (UnidentifiedImageError, OSError, ValueError) as e:
                raise InkdigitsError(f"{path}: cannot read this image ({first_line(e)})") from None
            if size is None:
                size, first = gray.shape, path
            elif gray.shape != size:
                raise InkdigitsError(f"{path}: is {gray.shape[1]}x{gray.shape[0]}, but {first} is {size[1]}x{size[0]}; "
                                     "all images must have one size")  # fmt: skip
            images.append(gray)
            labels.append(label)
    return {"x_train": np.stack(images), "y_train": np.array(labels)}, [p.name for p in classes]


def grayscale(img) -> np.ndarray:
    """Luminance, explicitly (never RGB); transparent pixels become black paper."""
    from PIL import Image

    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):  # 16-bit (or float) grey: scaled, not clipped
        values = np.asarray(img, dtype=np.float64)
        top = 1.0 if img.mode == "F" and values.max(initial=0) <= 1.0 else 255.0 if img.mode == "F" else 65535.0
        return np.clip(np.rint(values / top * 255.0), 0, 255).astype(np.uint8)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("L"), dtype=np.uint8)


def remap_labels(arrays: dict, names: list[str] | None, classes: str | None, where: str):
    """Labels -> 0..K-1 in sorted order of the training values. Names (from --classes, else the source, else
    the values) are given in that order; names for labels 0..N-1 that never occur are a class with no images."""
    y = arrays["y_train"]
    if not np.issubdtype(y.dtype, np.integer):
        raise InkdigitsError(f"{where}: labels must be integers, got {y.dtype}")
    values = np.unique(y)
    if not CLASSES[0] <= len(values) <= CLASSES[1]:
        raise InkdigitsError(f"{where}: {len(values)} classes in the labels; inkdigits needs {CLASSES[0]} to {CLASSES[1]}")
    if classes is not None:
        if not classes.strip():
            raise InkdigitsError("--classes is empty: give the names in label order, 'a,b,c' or 'abc'")
        names = [c.strip() for c in classes.split(",")] if "," in classes else list(classes)
    if names is not None and len(names) != len(values):
        absent = [n for i, n in enumerate(names) if i not in set(values.tolist())]
        if len(names) > len(values) and absent:
            raise InkdigitsError(f"{where}: class '{absent[0]}' has no images ({len(values)} of {len(names)} present)")
        raise InkdigitsError(f"{where}: {len(names)} class names for {len(values)} label values")
    names = names or [str(v) for v in values]
    check_class_names(names, where)
    out = dict(arrays, y_train=np.searchsorted(values, y))
    if arrays.get("y_test") is not None:
        stray = sorted(set(np.unique(arrays["y_test"]).tolist()) - set(values.tolist()))
        if stray:
            raise InkdigitsError(f"{where}: test label {stray[0]} never appears in the training labels")
        out["y_test"] = np.searchsorted(values, arrays["y_test"])
    return out, names


def check_class_names(names: list[str], where: str) -> None:
    """Names that survive inkdigits' own files (classes.txt, one per line; --classes, comma-separated): distinct,
    non-empty strings, printable, without commas or surrounding spaces."""
    if len(set(names)) != len(names):
        raise InkdigitsError(f"{where}: class names must be distinct, got {names[:12]}")
    for name in names:
        if not isinstance(name, str) or not name or not name.isprintable() or "," in name or name != name.strip():
            raise InkdigitsError(f"{where}: class name {name!r:.40} is not usable: names are non-empty, printable, "
                                 "without commas or surrounding spaces")  # fmt: skip


def check_image_shape(x: np.ndarray, where: str) -> None:
    if x.ndim != 3 or not (MIN_SIDE <= min(x.shape[1:]) and max(x.shape[1:]) <= MAX_SIDE):
        raise InkdigitsError(f"{where}: images are {x.shape[1:] if x.ndim == 3 else x.shape}; inkdigits trains on "
                             f"images of {MIN_SIDE} to {MAX_SIDE} pixels a side")  # fmt: skip
    if len(x) == 0:
        raise InkdigitsError(f"{where}: holds no images")


def hold_out_test(arrays: dict, fraction: float, where: str, log) -> dict:
    """A test split from a source without one: the last ``fraction`` after a fixed shuffle."""
    x, y = arrays["x_train"], arrays["y_train"]
    order = np.random.default_rng(0).permutation(len(x))
    n_test = max(1, round(len(x) * fraction))
    if len(x) - n_test < 2:
        raise InkdigitsError(f"{where}: {len(x)} images are too few to hold out a test split")
    log(f"{where}: no test split; holding out {n_test} of {len(x)} images (--test-fraction {fraction}) as one")
    keep, test = order[:-n_test], order[-n_test:]
    return {"x_train": x[keep], "y_train": y[keep], "x_test": x[test], "y_test": y[test]}


def choose_size(shape, requested: int | None, where: str, log) -> int:
    h, w = shape
    if h != w:
        raise InkdigitsError(f"{where}: images are {w}x{h}; inkdigits needs square images (crop or pad them)")
    if requested is None:
        if h % 4 == 0 and IMAGE_SIZES[0] <= h <= IMAGE_SIZES[1]:
            return h
        requested = 28
    if requested != h:
        log(f"{where}: resizing {h}x{h} images to {requested}x{requested} (--image-size {requested})")
    return requested


def resize(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[1] == size:
        return images
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BILINEAR)) for im in images])
