"""Training throughput (images/s) of the default GAN config on this machine's CPU.

    python benchmarks/train_speed.py [--threads 2] [--steps 60]
Run it on an otherwise idle machine: another torch job on the same cores halves the figure or worse.
"""

import argparse
import os
import platform
import tempfile
import time

import torch

from inkdigits.models import GANConfig
from inkdigits.train import Trainer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = GANConfig()
    # Synthetic batches: throughput does not depend on pixel values, and this needs no dataset.
    t = Trainer(cfg, tempfile.mkdtemp(prefix="train-speed-"), device="cpu", quiet=True, mnist=_fake_mnist())
    t.setup()
    x = torch.randint(0, 256, (cfg.batch_size, 28, 28), dtype=torch.uint8)
    y = torch.randint(0, 10, (cfg.batch_size,))
    for _ in range(args.warmup):
        t.gan_step(x, y)
    start = time.perf_counter()
    for _ in range(args.steps):
        t.gan_step(x, y)
    dt = (time.perf_counter() - start) / args.steps
    g = sum(p.numel() for p in t.G.parameters())
    d = sum(p.numel() for p in t.D.parameters())
    print("| machine | torch | threads | G params | D params | batch | ms/step | images/s | s/epoch (60k) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {platform.machine()} x{os.cpu_count()} CPU | {torch.__version__} | {args.threads} | {g / 1e6:.2f} M | "
          f"{d / 1e6:.2f} M | {cfg.batch_size} | {dt * 1000:.1f} | {cfg.batch_size / dt:.0f} | {60000 / (cfg.batch_size / dt):.0f} |")


def _fake_mnist():
    from inkdigits.data import MNIST

    x = torch.randint(0, 256, (4096, 28, 28), dtype=torch.uint8)
    y = torch.randint(0, 10, (4096,))
    return MNIST(x, y, x[:100], y[:100], "synthetic")


if __name__ == "__main__":
    main()
