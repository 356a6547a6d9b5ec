"""The conditional GAN's mathematics: losses, one training step, the moving average, sampling.

    gan = ConditionalGAN(ModelConfig(), TrainConfig(augment="ada"))  # "auto" is resolved by config.recipe()
    losses = gan.train_step(images_uint8, labels)     # {"loss_d": ..., "loss_g": ...}
    images = gan.sample(z, labels)                    # uint8, from the moving-average generator

No files, processes or logging here: the training loop (train.py) and the benchmarks drive this object, and
the tests train it for a few steps in memory.
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import torch
import torch.nn.functional as F

from .augment import AdaptiveAugment, augment, warp
from .config import LR, ModelConfig, TrainConfig
from .models import Discriminator, Generator, to_uint8, to_unit


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor, kind: str) -> torch.Tensor:
    """Hinge (Lim & Ye 2017; what SN-GAN and BigGAN use) or the non-saturating BCE loss."""
    if kind == "hinge":
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def generator_loss(d_fake: torch.Tensor, kind: str) -> torch.Tensor:
    return -d_fake.mean() if kind == "hinge" else F.softplus(-d_fake).mean()


def mode_seeking(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """MSGAN's term (Mao et al. 2019): 1 / (image distance / noise distance) between the batch's two halves, which
    share their classes. Small when two noises draw different images, large when G ignores its noise."""
    h = len(fake) // 2
    images = (fake[:h] - fake[h : 2 * h]).abs().mean()
    noises = (z[:h] - z[h : 2 * h]).abs().mean()
    return 1 / (images / noises + 1e-5)


R1_EVERY = 16  # lazy regularisation (StyleGAN2): the penalty every 16 steps, scaled by 16


class ConditionalGAN:
    """Generator, discriminator, their optimisers, the EMA generator and the noise stream of one run.

    Built from the seed alone (the global RNG is left as it was), so every DDP rank starts identical.
    """

    def __init__(self, model: ModelConfig, config: TrainConfig, device: str | torch.device = "cpu", rank: int = 0):
        self.model_config, self.config, self.device = model, config, torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.G = Generator(model).to(self.device)
            self.D = Discriminator(model).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        betas = (config.beta1, config.beta2)
        self.lr_g, self.lr_d = config.lr_g or LR, config.lr_d or LR  # unset outside a run (config.recipe() sets them)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=self.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=self.lr_d, betas=betas)
        self.rank = rank  # DDP: each process draws its own noise
        self.noise = torch.Generator().manual_seed(self.noise_seed(epoch=0))
        self.step = 0  # optimiser steps taken; the EMA schedule is keyed on it
        self.G_train, self.D_train = self.G, self.D  # replaced by DDP wrappers in parallel runs
        self.average = None  # averages gradients over the ranks in parallel runs
        self.autocast = self.device.type == "cuda"
        if config.augment not in ("ada", "none"):
            raise ValueError(f"augment={config.augment!r}: give ada or none ('auto' is for config.recipe(), which knows the data's size)")
        self.ada = AdaptiveAugment(config.augment == "ada", config.ada_target)
        self.guide = None  # the run's reference classifier, frozen, when config.guidance > 0 (set_guide)

    def set_guide(self, classifier: torch.nn.Module) -> None:
        """Class guidance: G also pays the cross-entropy of ``classifier`` on its images (frozen, eval mode)."""
        self.guide = copy.deepcopy(classifier).to(self.device).eval().requires_grad_(False)

    def noise_seed(self, epoch: int) -> int:
        """The seed of this process's noise stream at the start of ``epoch`` (DDP ranks reseed every epoch, so a
        resumed parallel run draws what an uninterrupted one would)."""
        return self.config.seed * 1000 + self.rank + 7919 * epoch

    def reseed_noise(self, epoch: int) -> None:
        self.noise.manual_seed(self.noise_seed(epoch))

    def parallelize(self, wrap, average=None) -> None:
        """Train through ``wrap(G)`` and ``wrap(D)`` (e.g. DistributedDataParallel); state stays unwrapped.
        ``average(tensors)`` averages tensors over the ranks in place, for gradients taken past the wrappers."""
        self.G_train, self.D_train = wrap(self.G), wrap(self.D)
        self.average = average
        self.ada.average = average

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """One discriminator and one generator update on uint8 images (N,H,W) and their labels (N,)."""
        with self.dropout_rng():
            return self.update(images, labels)

    @contextlib.contextmanager
    def dropout_rng(self):
        """D's dropout draws from the global RNG: seed it from the run's noise stream, so that a resumed run
        draws the same masks, and leave the global state as it was."""
        if not self.model_config.d_dropout:
            yield
            return
        seed = int(torch.randint(0, 2**62, (1,), generator=self.noise))
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            yield

    def update(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        n, kind = len(images), self.config.loss
        x = warp(to_unit(images).to(self.device, non_blocking=True), self.config.warp, self.noise)
        y_real = labels.to(self.device, non_blocking=True)
        z = torch.randn(n, self.model_config.latent_dim, generator=self.noise).to(self.device)
        y_fake = torch.randint(0, self.model_config.num_classes, (n,), generator=self.noise).to(self.device)
        pairs = self.config.diversity and n >= 2
        if pairs:  # the mode-seeking term compares the two halves' images: same classes, different noise
            y_fake[n // 2 : 2 * (n // 2)] = y_fake[: n // 2]
        p = self.ada.p
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            fake = self.G_train(z, y_fake)
            # Real and fake share one D forward: half the kernel launches, one set of SN power iterations.
            clean = torch.cat([x, fake.detach().to(x.dtype)])
            both, y_both = augment(clean, p, self.noise), torch.cat([y_real, y_fake])
            if self.config.consistency:  # bCR's second view of every image (each transform applied), same forward
                both, y_both = torch.cat([both, augment(clean, 1.0, self.noise)]), y_both.repeat(2)
            d_out = self.D_train(both, y_both).float()
        loss_d = discriminator_loss(d_out[:n], d_out[n : 2 * n], kind)
        if self.config.consistency:  # bCR (Zhao et al. 2020): D must score both views of an image alike
            loss_d = loss_d + self.config.consistency * (d_out[2 * n :] - d_out[: 2 * n]).square().mean()
        self.ada.observe(d_out[:n])
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        if self.config.r1_gamma > 0 and self.step % R1_EVERY == 0:
            self.add_r1_gradients(x, y_real)
        self.opt_d.step()

        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            loss_g = generator_loss(self.D_train(augment(fake, p, self.noise), y_fake).float(), kind)
        if pairs:
            loss_g = loss_g + self.config.diversity * mode_seeking(fake.float(), z)
        if self.config.guidance:
            if self.guide is None:
                raise ValueError("guidance > 0 needs a classifier: call set_guide() first")
            loss_g = loss_g + self.config.guidance * F.cross_entropy(self.guide(fake.float()), y_fake)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.step += 1
        self.update_ema()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}

    def r1_penalty(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """gamma/2 * E||grad_x D(x)||^2 on real images (Mescheder et al. 2018), scaled for lazy application."""
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.D(x, y).sum(), x, create_graph=True)
        return grad.square().flatten(1).sum(1).mean() * (self.config.r1_gamma / 2 * R1_EVERY)

    def add_r1_gradients(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add the R1 penalty's gradients to D's. The penalty needs a double backward, which DDP's hooks do not
        support, so it runs on the unwrapped D and its gradients are averaged over the ranks here."""
        params = [p for p in self.D.parameters() if p.requires_grad]
        grads = torch.autograd.grad(self.r1_penalty(x, y), params, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]
        if self.average is not None:
            self.average(grads)
        for p, g in zip(params, grads, strict=True):
            p.grad = g if p.grad is None else p.grad.add_(g)

    def set_lr_scale(self, scale: float) -> None:
        """Scale both learning rates (the training loop's decay schedule); 1.0 restores the configured ones."""
        for opt, lr in ((self.opt_g, self.lr_g), (self.opt_d, self.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * scale

    @torch.no_grad()
    def update_ema(self) -> None:
        """Average G's weights (a copy until ``ema_start`` steps); BatchNorm statistics are copied."""
        weight = 1.0 - self.config.ema_decay if self.step > self.config.ema_start else 1.0
        for ema, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
            ema.lerp_(p, weight)
        for ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
            ema.copy_(b)

    @torch.no_grad()
    def sample(self, z: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
        """uint8 images (N,H,W) from the moving-average generator."""
        return to_uint8(self.G_ema(z.to(self.device), labels.to(self.device)).float()).cpu().numpy()

    def state_dict(self) -> dict:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "step": self.step,
                "noise": self.noise.get_state(), "ada": self.ada.state_dict()}  # fmt: skip

    def load_state_dict(self, state: dict, noise: bool = True) -> None:
        """``noise=False`` keeps this object's noise stream (a DDP rank's stream is not in rank 0's file)."""
        for name in ("G", "D", "G_ema", "opt_g", "opt_d"):
            getattr(self, name).load_state_dict(state[name])
        self.step = state["step"]
        if "ada" in state:  # absent in checkpoints of inkdigits <= 0.2, which had no ADA
            self.ada.load_state_dict(state["ada"])
        if noise:
            self.noise.set_state(state["noise"])
