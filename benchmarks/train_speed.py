"""Training throughput (images/s) of the default GAN config on this machine's CPU.

    python benchmarks/train_speed.py [--threads 2] [--steps 60]
Run it on an otherwise idle machine: another torch job on the same cores halves the figure or worse.
"""

import argparse
import os
import platform
import time

import torch

from inkdigits.config import ModelConfig, TrainConfig
from inkdigits.gan import ConditionalGAN


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--dry-run", action="store_true", help="a few steps, to check that the script works")
    args = p.parse_args()
    if args.dry_run:
        args.steps, args.warmup = 3, 1
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(augment="none")  # the full-MNIST recipe (config.recipe)
    gan = ConditionalGAN(ModelConfig(), cfg)
    # Synthetic batches: throughput does not depend on pixel values, and this needs no dataset.
    x = torch.randint(0, 256, (cfg.batch_size, 28, 28), dtype=torch.uint8)
    y = torch.randint(0, 10, (cfg.batch_size,))
    for _ in range(args.warmup):
        gan.train_step(x, y)
    start = time.perf_counter()
    for _ in range(args.steps):
        gan.train_step(x, y)
    dt = (time.perf_counter() - start) / args.steps
    g = sum(p.numel() for p in gan.G.parameters())
    d = sum(p.numel() for p in gan.D.parameters())
    print("| machine | torch | threads | G params | D params | batch | ms/step | images/s | s/epoch (55k) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {platform.machine()} x{os.cpu_count()} CPU | {torch.__version__} | {args.threads} | {g / 1e6:.2f} M | "
          f"{d / 1e6:.2f} M | {cfg.batch_size} | {dt * 1000:.1f} | {cfg.batch_size / dt:.0f} | "
          f"{55000 / (cfg.batch_size / dt):.0f} |")


if __name__ == "__main__":
    main()
