"""The networks: a conditional DCGAN generator, a projection discriminator, and the reference classifier.

Generator: (z, digit) -> 28x28 image in [-1, 1]. The digit enters twice: as an embedding concatenated to
z, and through class-conditional BatchNorm (per-class gain and bias) at every layer, which is what makes
the requested class stick (BigGAN, Brock et al. 2019).

Discriminator: spectral-normalised convolutions (Miyato et al. 2018) and a projection head for the label
(Miyato & Koyama 2018): D(x, y) = w.h(x) + embed(y).h(x). No BatchNorm, so DDP has no buffers to fight over
and real and fake batches can share one forward.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

NUM_CLASSES = 10


@dataclass
class GANConfig:
    """Everything needed to rebuild the models and re-run their training (saved beside the weights)."""

    latent_dim: int = 64
    g_width: int = 48  # generator channels at 14x14 = 2*g_width, at 7x7 = 4*g_width
    d_width: int = 48  # discriminator channels: d_width, 2*d_width, 4*d_width
    embed_dim: int = 16  # label embedding concatenated to z
    loss: str = "hinge"  # "hinge" or "bce" (non-saturating)
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.0
    beta2: float = 0.999
    batch_size: int = 64
    epochs: int = 35
    ema_decay: float = 0.999
    ema_start: int = 1000  # steps before the EMA starts averaging (copying until then)
    seed: int = 0
    eval_per_class: int = 100  # samples per digit for the per-epoch class_acc/FID
    extra: dict = field(default_factory=dict)  # free-form notes (e.g. the command that trained it)

    @classmethod
    def from_dict(cls, d: dict) -> GANConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**d)

    def generator_kwargs(self) -> dict:
        return {"latent_dim": self.latent_dim, "width": self.g_width, "embed_dim": self.embed_dim}


def lookup(table: nn.Embedding, y: torch.Tensor) -> torch.Tensor:
    """Embedding of class indices (N,), or a blend of classes given as weights (N, 10) (for morphing)."""
    return y.to(table.weight.dtype) @ table.weight if y.is_floating_point() else table(y)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without its own affine; gain and bias are looked up per class."""

    def __init__(self, channels: int, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * lookup(self.gain, y)[:, :, None, None] + lookup(self.bias, y)[:, :, None, None]


class Generator(nn.Module):
    """z + digit -> 7x7 -> 14x14 -> 28x28 -> 3x3 conv to one channel. The last 3x3 conv (rather than a
    stride-2 transposed conv straight to pixels) smooths the checkerboard that stride-2 upsampling leaves;
    measured in benchmarks/RESULTS.md."""

    def __init__(self, latent_dim: int = 64, width: int = 32, embed_dim: int = 16):
        super().__init__()
        self.latent_dim = latent_dim
        c7, c14, c28 = 4 * width, 2 * width, width
        self.embed = nn.Embedding(NUM_CLASSES, embed_dim)
        self.fc = nn.Linear(latent_dim + embed_dim, c7 * 7 * 7, bias=False)
        self.bn7 = ConditionalBatchNorm2d(c7)
        self.up14 = nn.ConvTranspose2d(c7, c14, 4, 2, 1, bias=False)
        self.bn14 = ConditionalBatchNorm2d(c14)
        self.up28 = nn.ConvTranspose2d(c14, c28, 4, 2, 1, bias=False)
        self.bn28 = ConditionalBatchNorm2d(c28)
        self.to_pixels = nn.Conv2d(c28, 1, 3, 1, 1)
        self.c7 = c7

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """z: (N, latent_dim) noise; y: (N,) digits, or (N, 10) class weights. Returns (N,1,28,28) in [-1,1]."""
        h = self.fc(torch.cat([z, lookup(self.embed, y)], dim=1)).view(-1, self.c7, 7, 7)
        h = F.relu(self.bn7(h, y))
        h = F.relu(self.bn14(self.up14(h), y))
        h = F.relu(self.bn28(self.up28(h), y))
        return torch.tanh(self.to_pixels(h))


class Discriminator(nn.Module):
    """Spectral-normalised convs to a 7x7 feature map, flattened (not pooled: where a stroke sits matters
    for a digit, and pooled heads collapsed or overpowered G in our runs), then a linear + projection head."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.conv14 = spectral_norm(nn.Conv2d(1, width, 4, 2, 1))
        self.conv7 = spectral_norm(nn.Conv2d(width, 2 * width, 4, 2, 1))
        self.conv7b = spectral_norm(nn.Conv2d(2 * width, 4 * width, 3, 1, 1))
        features = 4 * width * 7 * 7
        self.linear = spectral_norm(nn.Linear(features, 1))
        self.project = spectral_norm(nn.Embedding(NUM_CLASSES, features))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv14(x), 0.2)
        h = F.leaky_relu(self.conv7(h), 0.2)
        h = F.leaky_relu(self.conv7b(h), 0.2).flatten(1)
        return self.linear(h).squeeze(1) + (self.project(y) * h).sum(dim=1)


@dataclass
class ClassifierConfig:
    width: int = 32
    feature_dim: int = 128
    dropout: float = 0.3


class Classifier(nn.Module):
    """A small CNN for MNIST; its 128-d penultimate layer is the feature space for FID and diversity."""

    def __init__(self, width: int = 32, feature_dim: int = 128, dropout: float = 0.3):
        super().__init__()
        self.config = {"width": width, "feature_dim": feature_dim, "dropout": dropout}  # saved beside the weights

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        w = width
        self.body = nn.Sequential(
            block(1, w), nn.MaxPool2d(2),  # 14x14
            block(w, 2 * w), block(2 * w, 2 * w), nn.MaxPool2d(2),  # 7x7
            block(2 * w, 4 * w), nn.MaxPool2d(2),  # 3x3
            nn.Flatten(),
            nn.Linear(4 * w * 9, feature_dim, bias=False), nn.BatchNorm1d(feature_dim), nn.ReLU(),
        )  # fmt: skip
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.body(x)))


def to_unit(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (N,28,28) -> float (N,1,28,28) in [-1, 1], the range every model here works in."""
    return images_uint8.unsqueeze(1).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float (N,1,28,28) in [-1, 1] -> uint8 (N,28,28)."""
    return ((x.squeeze(1).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
