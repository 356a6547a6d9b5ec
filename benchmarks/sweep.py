"""Short GAN runs for comparing configurations: train N steps, then measure the raw generator.

    python benchmarks/sweep.py --steps 1200 --set beta1=0.0 --set lr_d=4e-4
    python benchmarks/sweep.py --steps 3440 --ema --set augment='"ada"'    # 4 epochs, EMA weights
Prints one Markdown table row (paste it into benchmarks/RESULTS.md). Uses real MNIST (the training part of
the split that `inkdigits train` uses) and the shipped reference classifier, scored with 500 samples per
digit against the 5,000 held-out validation images (never the test set); 2 CPU threads unless --threads.
"""

import argparse
import json
import time

import numpy as np
import torch

from inkdigits import datasets
from inkdigits import evaluate as ev
from inkdigits.classifier import load_classifier
from inkdigits.config import recipe, resolve
from inkdigits.gan import ConditionalGAN
from inkdigits.judge import SCORE_SEED
from inkdigits.train import split


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--set", action="append", default=[], help="config field=value (JSON value)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ema", action="store_true", help="score the moving-average generator (else the raw one)")
    p.add_argument("--width", type=int, default=32, help="g_width and d_width unless --set gives them")
    p.add_argument("--dry-run", action="store_true", help="a few steps, to check that the script works")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {"g_width": args.width, "d_width": args.width}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = json.loads(value)
    steps, per_class = (5, 10) if args.dry_run else (args.steps, 500)
    mnist = datasets.load_mnist()
    model_cfg, cfg = resolve(overrides)
    x, y, x_val, y_val = split(mnist, cfg)
    model_cfg, cfg, _ = recipe(model_cfg, cfg, len(x), len(x) // cfg.batch_size, set(overrides))  # as `train` picks
    gan = ConditionalGAN(model_cfg, cfg)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for s in range(steps):
        i = (s * cfg.batch_size) % (len(x) - cfg.batch_size)
        idx = order[i : i + cfg.batch_size]
        gan.train_step(x[idx], y[idx])
    seconds = time.perf_counter() - start
    evaluator = ev.Evaluator(load_classifier(), x_val.numpy(), y_val.numpy(), max_per_class_diversity=200)
    z = torch.randn(10 * per_class, model_cfg.latent_dim, generator=torch.Generator().manual_seed(SCORE_SEED))
    labels = torch.arange(10).repeat_interleave(per_class)
    if not args.ema:  # the raw generator: very short runs have no useful moving average yet
        gan.G_ema.load_state_dict(gan.G.state_dict())
    m = evaluator.metrics(gan.sample(z, labels), labels.numpy())
    desc = ", ".join(f"{k}={v}" for k, v in overrides.items() if k not in ("g_width", "d_width")) or "defaults"
    print("| config | steps | s | class acc | FID | diversity | precision | recall | coverage |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {desc} (g{model_cfg.g_width}/d{model_cfg.d_width}{', EMA' if args.ema else ''}) | {steps} | "
          f"{seconds:.0f} | {m['class_acc']:.2%} | {m['fid']:.3f} | {m['diversity']:.3f} | {m['precision']:.3f} | "
          f"{m['recall']:.3f} | {m['coverage']:.3f} |")
    assert np.isfinite(m["fid"])


if __name__ == "__main__":
    main()
