"""The reference classifier: trained on real images, its penultimate features are where every quality
metric is measured (evaluate.py), and a fresh one trained on samples gives the CAS.

    inkdigits evaluate train-classifier      # the shipped models/classifier.safetensors
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import ClassifierConfig, ClassifierTrainConfig
from .models import Classifier, to_unit
from .resources import default_classifier
from .weights import load_model, save_weights, sidecar

__all__ = ["Classifier", "train_classifier", "predict", "accuracy", "save_classifier", "load_classifier",
           "load_classifier_and_classes", "cas"]


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Small random rotations, scalings and shifts (handwriting varies this much)."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(12)
    scale = 1 + (torch.rand(n, generator=gen) * 2 - 1) * 0.1
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * 0.15  # ~2 px
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Background is -1 in model units; pad with it rather than zeros (grey).
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1


def train_classifier(images: torch.Tensor, labels: torch.Tensor, train: ClassifierTrainConfig | None = None,
                     model: ClassifierConfig | None = None, progress: bool = False) -> Classifier:  # fmt: skip
    """Train the reference CNN on uint8 images (N,H,W) with int labels; seeded and deterministic."""
    train = train or ClassifierTrainConfig()
    images, labels = torch.as_tensor(np.asarray(images)), torch.as_tensor(np.asarray(labels)).long()
    if model is None:
        model = ClassifierConfig(num_classes=int(labels.max()) + 1, image_size=images.shape[-1])
    torch.manual_seed(train.seed)
    gen = torch.Generator().manual_seed(train.seed)
    net = Classifier(model)
    opt = torch.optim.AdamW(net.parameters(), lr=train.lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(images) / train.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=train.lr, total_steps=train.epochs * steps_per_epoch)
    net.train()
    for epoch in range(train.epochs):
        order = torch.randperm(len(images), generator=gen)
        total, t0 = 0.0, time.perf_counter()
        for i in range(steps_per_epoch):
            idx = order[i * train.batch_size : (i + 1) * train.batch_size]
            loss = F.cross_entropy(net(augment(to_unit(images[idx]), gen)), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        if progress:
            print(f"classifier epoch {epoch + 1}/{train.epochs}: loss {total / steps_per_epoch:.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    return net.eval()


@torch.no_grad()
def predict(model: Classifier, images, batch_size: int = 1000):
    """Return (logits, features) as float64 numpy arrays for uint8 images (N,H,W)."""
    images = torch.as_tensor(np.asarray(images))
    model.eval()
    logits, feats = [], []
    for i in range(0, len(images), batch_size):
        h = model.features(to_unit(images[i : i + batch_size]))
        feats.append(h.double().numpy())
        logits.append(model.head(h).double().numpy())
    if not feats:
        return np.zeros((0, model.config.num_classes)), np.zeros((0, model.config.feature_dim))
    return np.concatenate(logits), np.concatenate(feats)


def accuracy(model: Classifier, images, labels) -> float:
    logits, _ = predict(model, images)
    return float((logits.argmax(1) == np.asarray(labels)).mean())


def cas(images, labels, x_test, y_test, epochs: int, seed: int = 0, batch_size: int = 128) -> float:
    """Classification Accuracy Score: a fresh classifier trained on (images, labels) only, tested on real."""
    model = train_classifier(images, labels, ClassifierTrainConfig(epochs=epochs, seed=seed, batch_size=batch_size))
    return accuracy(model, x_test, y_test)


def save_classifier(model: Classifier, path: Path, info: dict) -> None:
    save_weights(model, path, sidecar("Classifier", asdict(model.config), **info))


def load_classifier(path: Path | None = None) -> Classifier:
    return load_classifier_and_classes(path)[0]


def load_classifier_and_classes(path: Path | None = None) -> tuple[Classifier, list[str] | None]:
    """The classifier and the class names its sidecar lists (None where it lists none, as the shipped one)."""
    net, _, info = load_model(Path(path) if path else default_classifier(), "Classifier", ClassifierConfig, Classifier)
    return net, info.get("classes")
