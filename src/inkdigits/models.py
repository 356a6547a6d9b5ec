"""The networks: a conditional DCGAN generator, a projection discriminator, and the reference classifier.

Generator: (z, class) -> an S x S image in [-1, 1] (S = image_size, 28 for MNIST). The class enters twice:
as an embedding concatenated to z, and through class-conditional BatchNorm (per-class gain and bias) at every
layer, which is what makes the requested class stick (BigGAN, Brock et al. 2019).

Discriminator: spectral-normalised convolutions (Miyato et al. 2018) and a projection head for the label
(Miyato & Koyama 2018): D(x, y) = w.h(x) + embed(y).h(x). No BatchNorm, so DDP has no buffers to fight over
and real and fake batches can share one forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .config import ClassifierConfig, ModelConfig

MBSTD_GROUP = 4


def lookup(table: nn.Embedding, y: torch.Tensor) -> torch.Tensor:
    """Embedding of class indices (N,), or a blend of classes given as weights (N, K) (for morphing)."""
    return y.to(table.weight.dtype) @ table.weight if y.is_floating_point() else table(y)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without its own affine; gain and bias are looked up per class."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * lookup(self.gain, y)[:, :, None, None] + lookup(self.bias, y)[:, :, None, None]


class ConvBlock(nn.Module):
    """3x3 conv, class-conditional BatchNorm, ReLU, at constant size and width: G's optional extra depth."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn = ConditionalBatchNorm2d(channels, num_classes)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(h), y))


class Generator(nn.Module):
    """z + class -> S/4 -> S/2 -> S (S = image_size; 7 -> 14 -> 28 for MNIST) -> 3x3 conv to one channel.
    The last 3x3 conv (rather than a stride-2 transposed conv straight to pixels) smooths the checkerboard
    that stride-2 upsampling leaves; measured in benchmarks/RESULTS.md. ``g_depth`` adds that many ConvBlocks
    after each upsampling. Layer names keep MNIST's sizes (bn7, up14, ...) so that weights files stay
    compatible."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        k, width = config.num_classes, config.g_width
        self.latent_dim, self.num_classes, self.base = config.latent_dim, k, config.image_size // 4
        c7, c14, c28 = 4 * width, 2 * width, width
        self.embed = nn.Embedding(k, config.embed_dim)
        self.fc = nn.Linear(config.latent_dim + config.embed_dim, c7 * self.base**2, bias=False)
        self.bn7 = ConditionalBatchNorm2d(c7, k)
        self.up14 = nn.ConvTranspose2d(c7, c14, 4, 2, 1, bias=False)
        self.bn14 = ConditionalBatchNorm2d(c14, k)
        self.up28 = nn.ConvTranspose2d(c14, c28, 4, 2, 1, bias=False)
        self.bn28 = ConditionalBatchNorm2d(c28, k)
        self.refine14 = nn.ModuleList(ConvBlock(c14, k) for _ in range(config.g_depth))  # empty: no weights
        self.refine28 = nn.ModuleList(ConvBlock(c28, k) for _ in range(config.g_depth))
        self.to_pixels = nn.Conv2d(c28, 1, 3, 1, 1)
        self.c7 = c7

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """z: (N, latent_dim) noise; y: (N,) classes, or (N, K) class weights. Returns (N,1,S,S) in [-1,1]."""
        h = self.fc(torch.cat([z, lookup(self.embed, y)], dim=1)).view(-1, self.c7, self.base, self.base)
        h = F.relu(self.bn7(h, y))
        h = F.relu(self.bn14(self.up14(h), y))
        for block in self.refine14:
            h = block(h, y)
        h = F.relu(self.bn28(self.up28(h), y))
        for block in self.refine28:
            h = block(h, y)
        return torch.tanh(self.to_pixels(h))


class Discriminator(nn.Module):
    """Spectral-normalised convs to an S/4 x S/4 feature map (7x7 for MNIST), flattened (not pooled: where a stroke sits matters
    for a digit, and pooled heads collapsed or overpowered G in our runs), then a linear + projection head."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        width = config.d_width
        self.conv14 = spectral_norm(nn.Conv2d(1, width, 4, 2, 1))
        self.conv7 = spectral_norm(nn.Conv2d(width, 2 * width, 4, 2, 1))
        self.conv7b = spectral_norm(nn.Conv2d(2 * width, 4 * width, 3, 1, 1))
        self.minibatch_std, self.dropout = config.d_minibatch_std, config.d_dropout
        features = (4 * width + self.minibatch_std) * (config.image_size // 4) ** 2
        self.linear = spectral_norm(nn.Linear(features, 1))
        self.project = spectral_norm(nn.Embedding(config.num_classes, features))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv14(x), 0.2)
        h = F.leaky_relu(self.conv7(h), 0.2)
        h = F.leaky_relu(self.conv7b(h), 0.2)
        if self.minibatch_std:
            h = torch.cat([h, group_std(h)], dim=1)
        h = F.dropout(h.flatten(1), self.dropout, self.training)
        return self.linear(h).squeeze(1) + (self.project(y) * h).sum(dim=1)


def group_std(h: torch.Tensor, group: int = MBSTD_GROUP) -> torch.Tensor:
    """ProGAN's minibatch standard deviation: for each group of consecutive images, the mean over features of
    their standard deviation, as one more channel. A generator that draws every image alike shows up here. Real
    and fake images share D's forward as the two halves of one batch: the group divides half the batch (4 where
    the batch is a multiple of 8, 2 where of 4, else 1), so no group mixes real and fake images."""
    n, _, height, width = h.shape
    g = group if n % (2 * group) == 0 else 2 if n % 4 == 0 else 1
    groups = h.float().reshape(n // g, g, -1)
    # the variance by hand: torch.var over a middle dimension has a CPU backward 10x slower (70 ms a step here)
    variance = (groups - groups.mean(dim=1, keepdim=True)).square().mean(dim=1)
    std = variance.add(1e-8).sqrt().mean(dim=1)  # (n // g,)
    return std.repeat_interleave(g).view(n, 1, 1, 1).expand(n, 1, height, width).to(h.dtype)


class Classifier(nn.Module):
    """A small CNN; its 128-d penultimate layer is the feature space for FID, diversity and precision/recall."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config  # saved beside the weights
        w, feature_dim = config.width, config.feature_dim

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.body = nn.Sequential(
            block(1, w), nn.MaxPool2d(2),  # 14x14
            block(w, 2 * w), block(2 * w, 2 * w), nn.MaxPool2d(2),  # 7x7
            block(2 * w, 4 * w), nn.MaxPool2d(2),  # 3x3
            nn.Flatten(),
            nn.Linear(4 * w * (config.image_size // 8) ** 2, feature_dim, bias=False), nn.BatchNorm1d(feature_dim), nn.ReLU(),
        )  # fmt: skip
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(feature_dim, config.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.body(x)))


def to_unit(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (N,H,W) -> float (N,1,H,W) in [-1, 1], the range every model here works in."""
    return images_uint8.unsqueeze(1).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float (N,1,H,W) in [-1, 1] -> uint8 (N,H,W)."""
    return ((x.squeeze(1).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
