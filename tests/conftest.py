"""Shared test helpers: tiny synthetic data, one tiny generator, a free port, a malicious pickle."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# benchmarks/_serving.py (the Streamlit server start) is shared by the browser tests and benchmarks.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

# Tests use tiny models; one thread is fastest and never fights a background training run.
os.environ.setdefault("OMP_NUM_THREADS", "1")

TINY_MODEL = {"g_width": 8, "d_width": 8, "latent_dim": 16}
# A few-second training run on the synthetic data below (640 train images, 64 held out).
TINY_TRAIN = {**TINY_MODEL, "batch_size": 32, "epochs": 1, "eval_per_class": 0, "ema_start": 4, "val_size": 64}


def flags(settings: dict) -> list[str]:
    """Config fields as `inkdigits train` flags: {"g_width": 8} -> ["--g-width", "8"]."""
    return [part for key, value in settings.items() for part in (f"--{key.replace('_', '-')}", str(value))]


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)


def synthetic_arrays(n_train=640, n_test=200, seed=0):
    """MNIST-shaped data: each digit class is a 5x5 block in its own cell of a 3x4 grid, plus faint noise.

    Cells are 7-8 px apart, so the classifier's +-2 px augmentation keeps the classes apart."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = np.arange(n) % 10
        x = rng.integers(0, 30, size=(n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(y):
            r, k = 2 + 8 * (c // 4), 2 + 7 * (c % 4)
            x[i, r : r + 5, k : k + 5] = 255
        return x, y.astype(np.uint8)

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A cache folder holding a small synthetic dataset, used by everything that loads MNIST."""
    from inkdigits import data

    folder = tmp_path / "cache"
    data.save_cache(synthetic_arrays(), folder, source="synthetic")
    monkeypatch.setenv("INKDIGITS_DATA_DIR", str(folder))
    return folder


def write_tiny_generator(path, **info):
    """An untrained tiny generator (seed 0) with a format-2 sidecar; returns ``path``."""
    import torch

    from inkdigits.config import ModelConfig
    from inkdigits.models import Generator
    from inkdigits.weights import save_weights, sidecar

    config = ModelConfig(**TINY_MODEL)
    torch.manual_seed(0)
    save_weights(Generator(config).eval(), path, sidecar("Generator", vars(config), epoch=0, **info))
    return path


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    return write_tiny_generator(tmp_path_factory.mktemp("weights") / "generator.safetensors")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Evil:
    """Unpickling this runs a shell command: what every loader here must refuse."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.fixture(scope="module")
def measured_weights(tmp_path_factory):
    """The tiny generator with a metrics file beside it, as the quality benchmark writes one."""
    import json

    path = write_tiny_generator(tmp_path_factory.mktemp("weights") / "generator.safetensors")
    metrics = {"class_acc": 0.5, "fid": 1.0, "fid_ratio": 2.0, "diversity": 0.9, "cas": 0.75}
    path.with_suffix(".metrics.json").write_text(json.dumps(metrics))
    return path


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody can write to: a read-only tmpfs for root (who ignores permissions), else mode 0500."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"root cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)
