"""The usual starting point, for comparison: an MLP conditional GAN in the style of PyTorch-GAN's cgan.py.

G: [z(100) ‖ label embedding(10)] -> 128 -> 256 -> 512 -> 1024 -> 784 (LeakyReLU, BatchNorm), tanh.
D: [image(784) ‖ label embedding(10)] -> 512 -> 512 -> 512 -> 1 (LeakyReLU, dropout), least-squares loss.
Adam(2e-4, betas 0.5/0.999), batch 64. Trained for a fixed wall-clock budget on the same CPU, then scored by
the same evaluator as inkdigits (1000 samples per digit, seed 0, with CAS):

    python benchmarks/baseline_mlp_cgan.py --minutes 15
"""

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inkdigits import datasets
from inkdigits import evaluate as ev
from inkdigits.classifier import load_classifier
from inkdigits.models import to_uint8, to_unit


class MLPGenerator(nn.Module):
    def __init__(self, latent=100):
        super().__init__()
        self.embed = nn.Embedding(10, 10)
        dims = [latent + 10, 128, 256, 512, 1024]
        layers = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            layers += [nn.Linear(a, b)] + ([nn.BatchNorm1d(b)] if i else []) + [nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers, nn.Linear(1024, 784), nn.Tanh())

    def forward(self, z, y):
        return self.body(torch.cat([z, self.embed(y)], 1)).view(-1, 1, 28, 28)


class MLPDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 10)
        self.body = nn.Sequential(
            nn.Linear(794, 512), nn.LeakyReLU(0.2),
            nn.Linear(512, 512), nn.Dropout(0.4), nn.LeakyReLU(0.2),
            nn.Linear(512, 512), nn.Dropout(0.4), nn.LeakyReLU(0.2),
            nn.Linear(512, 1),
        )  # fmt: skip

    def forward(self, x, y):
        return self.body(torch.cat([x.flatten(1), self.embed(y)], 1)).squeeze(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dry-run", action="store_true", help="a few steps, to check that the script works")
    args = p.parse_args()
    max_steps, per_class = (5, 20) if args.dry_run else (None, 1000)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    mnist = datasets.load_mnist()
    G, D = MLPGenerator(), MLPDiscriminator()
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    n, step, start = len(mnist.x_train), 0, time.perf_counter()
    while time.perf_counter() - start < args.minutes * 60:
        order = torch.randperm(n)
        for i in range(0, n - 63, 64):
            idx = order[i : i + 64]
            x, y = to_unit(mnist.x_train[idx]), mnist.y_train[idx]
            z, y_fake = torch.randn(64, 100), torch.randint(0, 10, (64,))
            fake = G(z, y_fake)
            loss_g = F.mse_loss(D(fake, y_fake), torch.ones(64))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            loss_d = (F.mse_loss(D(x, y), torch.ones(64)) + F.mse_loss(D(fake.detach(), y_fake), torch.zeros(64))) / 2
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            step += 1
            if time.perf_counter() - start >= args.minutes * 60 or step == max_steps:
                break
        if step == max_steps:
            break
    minutes = (time.perf_counter() - start) / 60
    G.eval()
    labels = np.repeat(np.arange(10), per_class)
    z = torch.randn(len(labels), 100, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        images = to_uint8(G(z, torch.from_numpy(labels))).numpy()
    result = ev.run_evaluation(images, labels, mnist, load_classifier(), with_cas=True,
                               cas_epochs=1 if args.dry_run else ev.CAS_EPOCHS)  # fmt: skip
    print(f"MLP cGAN (cgan.py-style): {step} steps = {step * 64 / n:.1f} epochs in {minutes:.1f} min\n")
    print(ev.format_table({"MLP cGAN baseline": result["samples"], "real MNIST train (1000/digit)": result["reference"]}))


if __name__ == "__main__":
    main()
