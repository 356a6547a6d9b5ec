"""How good are the images? Metrics in the feature space of a reference classifier (classifier.py).

Inception features mean nothing for small grayscale images such as MNIST's 28x28 digits, so (as GAN papers on
MNIST do) we use a small CNN trained on the same data and measure against the data's held-out real images (the
test split; the validation split during training):

  class_acc     share of samples the classifier reads as the requested class (and per class)
  fid           Frechet distance of the classifier's 128-d penultimate features; fid_per_class: mean per class
  diversity     mean pairwise feature distance within each class / the same for real test images
  precision     share of samples inside the real images' k-NN balls (k = 5; Kynkaanniemi et al. 2019)
  recall        share of real images inside the samples' k-NN balls: how much of real handwriting is reached
  density       how many real balls hold each sample, / k; coverage: share of real balls holding a sample
                (Naeem et al. 2020); all four per class, averaged over classes
  cas           Classification Accuracy Score: train a fresh classifier on the samples only, test on real
  reference     the same metrics for METRICS_PER_CLASS real *training* images per class: the physical limit
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .classifier import Classifier, cas, predict
from .config import METRICS_PER_CLASS
from .errors import InkdigitsError
from .formats import check_labelled, npz_arrays

CAS_EPOCHS = 10  # the CAS protocol: a fresh classifier, 10 epochs on the samples only


# --------------------------------------------------------------------------- metrics


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """||mu1-mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^1/2), in float64.

    tr((C1 C2)^1/2) = tr((S C2 S)^1/2) with S = C1^1/2; S C2 S is symmetric PSD, so both roots come from
    eigh with negative round-off clipped: real, and stable for near-singular covariances.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    w, v = np.linalg.eigh((cov1 + cov1.T) / 2)
    s = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = s @ cov2 @ s
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    d = float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt)
    return max(d, 0.0)


def stats(features: np.ndarray):
    return features.mean(0), np.cov(features, rowvar=False)


def fid(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    return frechet_distance(*stats(feats_a), *stats(feats_b))


def mean_pairwise_distance(features: np.ndarray) -> float:
    n = len(features)
    if n < 2:
        return 0.0
    sq = (features**2).sum(1)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2 * features @ features.T, 0, None)
    return float(np.sqrt(d2).sum() / (n * (n - 1)))


def per_class_diversity(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.array([mean_pairwise_distance(features[labels == c]) for c in range(num_classes)])


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(d2, 0, None))


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    d = pairwise_distances(features, features)
    return np.partition(d, k, axis=1)[:, k]  # column 0 is the point itself, at distance 0


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict:
    """Precision, recall, density and coverage of ``fake`` against ``real`` features."""
    if len(real) <= k or len(fake) <= k:
        return {"precision": float("nan"), "recall": float("nan"), "density": float("nan"), "coverage": float("nan")}
    real_r, fake_r = knn_radii(real, k), knn_radii(fake, k)
    d = pairwise_distances(real, fake)  # (real, fake)
    in_real_ball = d <= real_r[:, None]
    return {
        "precision": float(in_real_ball.any(0).mean()),
        "recall": float((d <= fake_r[None, :]).any(1).mean()),
        "density": float(in_real_ball.sum(0).mean() / k),
        "coverage": float((d.min(1) <= real_r).mean()),
    }


PRDC = ("precision", "recall", "density", "coverage")


class Evaluator:
    """Holds the classifier and the real test set's features, so many sample sets cost one pass each."""

    def __init__(self, classifier: Classifier, x_test, y_test, max_per_class_diversity: int = 1000):
        self.classifier = classifier
        self.num_classes = k = classifier.config.num_classes
        self.y_test = np.asarray(y_test)
        _, self.test_feats = predict(classifier, x_test)
        self.test_stats = stats(self.test_feats)
        self.test_class_stats = [stats(self.test_feats[self.y_test == c]) for c in range(k)]
        self.max_div = max_per_class_diversity
        self.test_div = per_class_diversity(*self._subsample(self.test_feats, self.y_test), k)

    def _subsample(self, feats, labels):
        # Diversity is O(n^2) per class; a fixed cap keeps it fast and comparable between sets.
        keep = np.concatenate([np.flatnonzero(labels == c)[: self.max_div] for c in range(self.num_classes)])
        return feats[keep], labels[keep]

    def metrics(self, images, labels) -> dict:
        labels, k = np.asarray(labels).astype(np.int64), self.num_classes
        logits, feats = predict(self.classifier, images)
        pred = logits.argmax(1)
        per_acc = [float((pred[labels == c] == c).mean()) if (labels == c).any() else float("nan")
                   for c in range(k)]  # fmt: skip
        out = {
            "n": int(len(labels)),
            "class_acc": float((pred == labels).mean()),
            "class_acc_per_digit": per_acc,
            "fid": frechet_distance(*stats(feats), *self.test_stats),
        }
        per_fid = [frechet_distance(*stats(feats[labels == c]), *self.test_class_stats[c])
                   for c in range(k) if (labels == c).sum() > 1 and (self.y_test == c).sum() > 1]  # fmt: skip
        out["fid_per_class"] = float(np.mean(per_fid)) if per_fid else float("nan")
        div = per_class_diversity(*self._subsample(feats, labels), k)
        present = [c for c in range(k) if (labels == c).sum() > 1]
        out["diversity"] = float(np.mean(div[present] / self.test_div[present])) if present else 0.0
        per_class = [prdc(self.test_feats[self.y_test == c], feats[labels == c]) for c in present]
        for name in PRDC:
            values = [p[name] for p in per_class if np.isfinite(p[name])]
            out[name] = float(np.mean(values)) if values else float("nan")
        return out


def real_reference_set(x_train, y_train, per_class: int, seed: int = 0):
    """``per_class`` real training images per digit, chosen with a fixed seed."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y_train)
    idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in range(int(y.max()) + 1)])
    return np.asarray(x_train)[idx], y[idx]


# --------------------------------------------------------------------------- samples files


def load_samples(path: Path, num_classes: int = 10, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate an ``.npz`` with ``images`` (N,S,S) uint8 and ``labels`` (N,) ints 0..K-1."""
    arrays = npz_arrays(path)
    if not {"images", "labels"} <= set(arrays):
        raise InkdigitsError(f"{path}: needs arrays 'images' and 'labels', found {sorted(arrays) or 'none'}")
    images, labels = arrays["images"], arrays["labels"]
    check_labelled(path, images, labels, size=size, num_classes=num_classes)
    if len(labels) == 0:
        raise InkdigitsError(f"{path}: no samples")
    return images, labels.astype(np.int64)


# --------------------------------------------------------------------------- report

COLUMNS = [("class_acc", "class acc", "{:.2%}"), ("fid", "FID", "{:.3f}"), ("fid_ratio", "FID / real", "{:.1f}x"),
           ("fid_per_class", "class FID", "{:.3f}"), ("diversity", "diversity", "{:.3f}"),
           ("precision", "precision", "{:.3f}"), ("recall", "recall", "{:.3f}"), ("density", "density", "{:.3f}"),
           ("coverage", "coverage", "{:.3f}"), ("cas", "CAS", "{:.2%}")]  # fmt: skip


def format_table(rows: dict[str, dict], classes: list[str] | None = None) -> str:
    """Markdown table: one row per sample set (e.g. 'generator', 'real (train)')."""
    cols = [c for c in COLUMNS if any(c[0] in r for r in rows.values())]
    lines = ["| set | " + " | ".join(c[1] for c in cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, r in rows.items():
        cells = [c[2].format(r[c[0]]) if c[0] in r else "" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    worst = {name: min(range(len(r["class_acc_per_digit"])), key=lambda c: r["class_acc_per_digit"][c])
             for name, r in rows.items() if "class_acc_per_digit" in r}  # fmt: skip
    for name, c in worst.items():
        label = f"class {classes[c]}" if classes else f"digit {c}"
        lines.append(f"\n{name}: lowest class acc is {label} at {rows[name]['class_acc_per_digit'][c]:.2%}")
    return "\n".join(lines)


def run_evaluation(images, labels, mnist, classifier, with_cas=False, reference=True, per_class_ref=METRICS_PER_CLASS,
                   cas_epochs=CAS_EPOCHS, log=print) -> dict:  # fmt: skip
    """Metrics for a sample set, plus (optionally) the real-data reference row."""
    x_test, y_test = mnist.x_test.numpy(), mnist.y_test.numpy()
    ev = Evaluator(classifier, x_test, y_test)
    result = {"samples": ev.metrics(images, labels)}
    if with_cas:
        log("training a classifier on the samples for CAS ...")
        result["samples"]["cas"] = cas(images, labels, x_test, y_test, epochs=cas_epochs)
    if reference:
        rx, ry = real_reference_set(mnist.x_train.numpy(), mnist.y_train.numpy(), per_class_ref)
        result["reference"] = ev.metrics(rx, ry)
        if with_cas:
            log("training a classifier on real images for the reference CAS ...")
            result["reference"]["cas"] = cas(rx, ry, x_test, y_test, epochs=cas_epochs)
        ref_fid = result["reference"]["fid"]
        for row in result.values():
            row["fid_ratio"] = row["fid"] / ref_fid if ref_fid > 0 else float("inf")
    return result


def to_json(result: dict) -> str:
    return json.dumps(result, indent=2, sort_keys=True)
