import json

import numpy as np
import pytest
import torch
from conftest import synthetic_arrays

from inkdigits import classifier as clf
from inkdigits import cli
from inkdigits import evaluate as ev
from inkdigits.errors import InkdigitsError


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    a, b = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    expected = ((mu1 - mu2) ** 2).sum() + (a + b - 2 * np.sqrt(a * b)).sum()
    assert ev.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("angle", [0.0, 0.3, np.pi / 4, 1.2, np.pi / 2])
def test_frechet_distance_for_rotated_gaussians(angle):
    # N(0, C) against N(0, R C R^T), C = diag(a, b): for 2x2 PSD M, tr(M^1/2) = sqrt(tr M + 2 sqrt(det M)), so
    # FID = 2(a + b) - 2 sqrt((a^2 + b^2) cos^2 + 2ab sin^2 + 2ab).
    a, b = 4.0, 0.25
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    cov = np.diag([a, b])
    expected = 2 * (a + b) - 2 * np.sqrt((a * a + b * b) * c * c + 2 * a * b * s * s + 2 * a * b)
    assert ev.frechet_distance(np.zeros(2), cov, np.zeros(2), rot @ cov @ rot.T) == pytest.approx(expected, abs=1e-9)


def test_frechet_distance_is_unchanged_when_both_gaussians_rotate():
    rng = np.random.default_rng(1)
    m1, m2 = rng.normal(size=(2, 5, 5))
    c1, c2, mu1, mu2 = m1 @ m1.T, m2 @ m2.T, rng.normal(size=5), rng.normal(size=5)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))  # a random rotation
    before = ev.frechet_distance(mu1, c1, mu2, c2)
    assert before > 1
    assert ev.frechet_distance(q @ mu1, q @ c1 @ q.T, q @ mu2, q @ c2 @ q.T) == pytest.approx(before, rel=1e-9)


def test_frechet_distance_is_real_and_finite_for_singular_covariances():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 20))  # 5 samples in 20-D: rank-deficient covariances
    y = rng.normal(size=(5, 20))
    value = ev.fid(x, y)
    assert np.isfinite(value) and value >= 0
    assert ev.fid(x, x) == pytest.approx(0, abs=1e-6)


@pytest.fixture(scope="module")
def tiny_evaluator():
    torch.set_num_threads(1)
    arrays = synthetic_arrays(400, 300, seed=1)
    model = clf.train_classifier(arrays["x_train"], arrays["y_train"], clf.ClassifierTrainConfig(epochs=4, batch_size=32))
    return ev.Evaluator(model, arrays["x_test"], arrays["y_test"]), arrays


def test_real_against_real_gives_fid_zero_and_diversity_one(tiny_evaluator):
    evaluator, arrays = tiny_evaluator
    m = evaluator.metrics(arrays["x_test"], arrays["y_test"])
    assert m["fid"] == pytest.approx(0, abs=1e-6)
    assert m["fid_per_class"] == pytest.approx(0, abs=1e-6)
    assert m["diversity"] == pytest.approx(1.0)
    assert m["class_acc"] > 0.95


def test_mode_collapse_gives_diversity_zero(tiny_evaluator):
    evaluator, arrays = tiny_evaluator
    x, y = arrays["x_test"], arrays["y_test"]
    first = {c: x[np.flatnonzero(y == c)[0]] for c in range(10)}
    collapsed = np.stack([first[c] for c in y])
    m = evaluator.metrics(collapsed, y)
    assert m["diversity"] == pytest.approx(0, abs=1e-6)
    assert m["fid"] > 0


def test_shuffled_labels_give_chance_class_accuracy(tiny_evaluator):
    evaluator, arrays = tiny_evaluator
    shuffled = np.random.default_rng(3).permutation(arrays["y_test"])
    m = evaluator.metrics(arrays["x_test"], shuffled)
    assert 0.03 < m["class_acc"] < 0.2


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


GOOD_IMAGES = np.zeros((4, 28, 28), np.uint8)
GOOD_LABELS = np.array([0, 1, 2, 3])


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"imgs": GOOD_IMAGES, "labels": GOOD_LABELS}, "needs arrays 'images' and 'labels'"),
        ({"images": np.zeros((4, 28, 27), np.uint8), "labels": GOOD_LABELS}, r"shape \(N, 28, 28\)"),
        ({"images": GOOD_IMAGES.astype(np.float32), "labels": GOOD_LABELS}, "must be uint8"),
        ({"images": np.full((4, 28, 28), np.nan), "labels": GOOD_LABELS}, "must be uint8"),
        ({"images": GOOD_IMAGES, "labels": GOOD_LABELS[:3]}, r"4 images but labels of shape \(3,\)"),
        ({"images": GOOD_IMAGES, "labels": np.array([0, 1, 2, 10])}, "labels must be 0-9"),
        ({"images": GOOD_IMAGES, "labels": np.array([0, 1, 2, -1])}, "labels must be 0-9"),
        ({"images": GOOD_IMAGES, "labels": GOOD_LABELS.astype(float)}, "labels must be integers"),
    ],
)
def test_bad_samples_files_are_clear_errors(tmp_path, arrays, message):
    path = write_npz(tmp_path / "s.npz", **arrays)
    with pytest.raises(InkdigitsError, match=message) as e:
        ev.load_samples(path)
    assert str(path) in str(e.value)


def test_samples_file_that_is_not_npz(tmp_path):
    path = tmp_path / "s.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(InkdigitsError, match="not an .npz file"):
        ev.load_samples(path)


def test_cli_evaluate_samples_json(data_dir, tmp_path, tiny_evaluator, capsys):
    evaluator, arrays = tiny_evaluator
    clf.save_classifier(evaluator.classifier, tmp_path / "clf.safetensors", {"test_accuracy": 1.0})
    samples = write_npz(tmp_path / "s.npz", images=arrays["x_test"][:100], labels=arrays["y_test"][:100])
    code = cli.main(["evaluate", "--samples", str(samples), "--classifier", str(tmp_path / "clf.safetensors"),
                     "--json", "--threads", "1"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert {"class_acc", "fid", "fid_per_class", "diversity", "fid_ratio"} <= set(result["samples"])
    assert result["reference"]["n"] == 10 * 64  # the synthetic train set has 64 per digit
    assert len(result["samples"]["class_acc_per_digit"]) == 10


def test_cas_on_real_data_is_high(tiny_evaluator):
    _, arrays = tiny_evaluator
    acc = clf.cas(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], epochs=4, batch_size=32)
    assert acc > 0.9


def test_classifier_round_trip(tmp_path, tiny_evaluator):
    evaluator, arrays = tiny_evaluator
    clf.save_classifier(evaluator.classifier, tmp_path / "c.safetensors", {"test_accuracy": 0.5})
    loaded = clf.load_classifier(tmp_path / "c.safetensors")
    a, _ = clf.predict(evaluator.classifier, arrays["x_test"][:10])
    b, _ = clf.predict(loaded, arrays["x_test"][:10])
    np.testing.assert_allclose(a, b)


def test_prdc_of_a_set_against_itself_is_perfect():
    feats = np.random.default_rng(0).normal(size=(200, 8))
    m = ev.prdc(feats, feats)
    assert m["precision"] == m["recall"] == m["coverage"] == 1.0 and m["density"] >= 1.0


def test_mode_collapse_gives_recall_near_zero(tiny_evaluator):
    evaluator, arrays = tiny_evaluator
    x, y = arrays["x_test"], arrays["y_test"]
    collapsed = np.stack([x[np.flatnonzero(y == c)[0]] for c in y])
    m = evaluator.metrics(collapsed, y)
    assert m["recall"] < 0.1 and m["coverage"] < 0.2


def test_noisy_real_images_give_low_precision(tiny_evaluator):
    evaluator, arrays = tiny_evaluator
    noise = np.random.default_rng(4).integers(0, 256, size=arrays["x_test"].shape)
    noisy = np.clip(arrays["x_test"].astype(int) // 2 + noise // 2, 0, 255).astype(np.uint8)
    clean = evaluator.metrics(arrays["x_test"], arrays["y_test"])
    m = evaluator.metrics(noisy, arrays["y_test"])
    assert clean["precision"] == 1.0 and m["precision"] < 0.3
