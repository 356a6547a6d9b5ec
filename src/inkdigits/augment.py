"""What the discriminator sees: augmented real and fake images alike, and ADA's controller of how often.

On a small data set D memorises the real images and its gradients stop teaching G (Karras et al. 2020, "Training
generative adversarial networks with limited data"; Zhao et al. 2020, DiffAugment). Augmenting *both* D's inputs
with differentiable transforms keeps D from memorising, and because fakes are augmented by the same code, G still
learns the un-augmented images: each transform is applied with probability p, and below p ~ 0.8 these transforms
do not leak into the samples. ADA raises p while D is overconfident on real images and lowers it when not.

Every transform is drawn per image from the run's noise stream. Background is -1 (black paper), so shifted-in
pixels and cut-out squares are blank paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SHIFT = 2  # px; +-4 (DiffAugment's 1/8 of the size) broke the flattened D head's conditioning (RESULTS section 6)
CUTOUT = 0.25  # side of the blanked square, as a share of the image side
BRIGHTNESS = 0.25  # +- in model units ([-1, 1])
CONTRAST = 0.25  # scale about the image mean in [1 - c, 1 + c]
WARP_ROTATION = 10.0  # degrees, +- (--warp): small enough that a digit stays the same digit
WARP_SCALE = 0.1  # +- share of the size
WARP_SHEAR = 0.2  # +- horizontal slant, px per px
ADA_INTERVAL = 4  # steps between adjustments
ADA_IMAGES = 100_000  # images seen for p to go from 0 to 1 at the fastest (the paper's 500k is for longer runs)


def augment(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, a shift of up to SHIFT px and a cutout, each applied to each image with probability p."""
    if p <= 0:
        return x
    n, _, h, w = x.shape
    dev = x.device

    def chosen() -> torch.Tensor:  # drawn on the CPU generator, so no device sync
        return (torch.rand(n, generator=gen) < p).float().view(n, 1, 1, 1)

    def uniform(half_width: float) -> torch.Tensor:
        return ((torch.rand(n, generator=gen) * 2 - 1) * half_width).view(n, 1, 1, 1)

    x = x + (chosen() * uniform(BRIGHTNESS)).to(dev)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + (x - mean) * (1 + chosen() * uniform(CONTRAST)).to(dev)

    shift = torch.randint(-SHIFT, SHIFT + 1, (2, n, 1, 1), generator=gen) * chosen().view(1, n, 1, 1).long()
    shift = shift.to(dev)
    rows = torch.arange(h, device=dev).view(1, h, 1) + shift[0] + SHIFT
    cols = torch.arange(w, device=dev).view(1, 1, w) + shift[1] + SHIFT
    padded = F.pad(x, (SHIFT, SHIFT, SHIFT, SHIFT), value=-1.0)
    x = padded[torch.arange(n, device=dev).view(n, 1, 1), :, rows, cols].permute(0, 3, 1, 2)

    size = max(1, round(h * CUTOUT))
    corner = (torch.rand(2, n, 1, 1, generator=gen) * torch.tensor([h - size + 1, w - size + 1]).view(2, 1, 1, 1)).long()
    corner = corner.to(dev)
    r, c = torch.arange(h, device=dev).view(1, h, 1), torch.arange(w, device=dev).view(1, 1, w)
    inside = (r >= corner[0]) & (r < corner[0] + size) & (c >= corner[1]) & (c < corner[1] + size)
    cut = inside.unsqueeze(1) & (chosen() > 0).to(dev)
    return torch.where(cut, torch.full_like(x, -1.0), x)


def warp(x: torch.Tensor, p: float, gen: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """A small random rotation, scale and slant of each image with probability p (bilinear; blank paper shifted in);
    ``strength`` multiplies the three bounds.

    Unlike :func:`augment` this is for the *training images* only: G learns the warped images too, which is the
    point on a small set, whose few hundred hands per class show less of the variety of handwriting than the
    transforms add (``--warp``)."""
    if p <= 0:
        return x
    n = len(x)

    def uniform(half_width: float) -> torch.Tensor:
        return (torch.rand(n, generator=gen) * 2 - 1) * half_width

    chosen = (torch.rand(n, generator=gen) < p).float()
    angle = torch.deg2rad(uniform(WARP_ROTATION * strength)) * chosen
    scale = 1 + uniform(WARP_SCALE * strength) * chosen
    shear = uniform(WARP_SHEAR * strength) * chosen
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # output -> input coordinates: rotate and scale, then slant along x
    theta = torch.stack([torch.stack([cos, -sin + shear * cos, torch.zeros(n)], 1),
                         torch.stack([sin, cos + shear * sin, torch.zeros(n)], 1)], 1).to(x)  # fmt: skip
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    paper = x.new_tensor(-1.0)  # grid_sample fills outside with 0: sample the ink above the paper
    return F.grid_sample(x - paper, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + paper


class AdaptiveAugment:
    """ADA's controller: p follows D's overfitting signal r_t = E[sign(D(real))] toward ``target``.

    ``enabled=False`` keeps p at 0 (no augmentation) but still reports r_t, so a run without ADA shows how much
    its D overfits."""

    def __init__(self, enabled: bool, target: float):
        self.enabled, self.target = enabled, target
        self.p = 0.0
        self.signs = torch.zeros(())  # sum of sign(D(real)) since the last adjustment
        self.count = 0
        self.steps = 0
        self.last_rt = float("nan")
        self.average = None  # averages tensors over DDP ranks in place, so every rank keeps the same p

    def observe(self, d_real: torch.Tensor) -> None:
        """Called once per step with D's outputs on the (augmented) real batch."""
        self.signs = self.signs.to(d_real.device) + torch.sign(d_real.detach()).sum().float()
        self.count += d_real.numel()
        self.steps += 1
        if self.steps % ADA_INTERVAL == 0:
            total = torch.stack([self.signs, torch.tensor(float(self.count), device=self.signs.device)])
            if self.average is not None:
                self.average([total])
            self.last_rt = float(total[0] / total[1].clamp(min=1))  # one host sync every ADA_INTERVAL steps
            if self.enabled:
                direction = 1.0 if self.last_rt > self.target else -1.0
                self.p = min(1.0, max(0.0, self.p + direction * self.count / ADA_IMAGES))
            self.signs, self.count = torch.zeros(()), 0

    def state_dict(self) -> dict:
        return {"p": self.p, "signs": float(self.signs), "count": self.count, "steps": self.steps,
                "last_rt": self.last_rt}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.p, self.count, self.steps = float(state["p"]), int(state["count"]), int(state["steps"])
        self.signs = torch.tensor(float(state["signs"]))
        self.last_rt = float(state["last_rt"])
