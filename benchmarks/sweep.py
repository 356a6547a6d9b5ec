"""Short GAN runs for comparing configurations: train N steps, then measure the raw generator.

    python benchmarks/sweep.py --steps 1200 --set beta1=0.0 --set lr_d=4e-4
Prints one Markdown table row (paste it into benchmarks/RESULTS.md). Uses real MNIST and the shipped
reference classifier; 2 CPU threads unless --threads.
"""

import argparse
import json
import tempfile
import time

import numpy as np
import torch

from inkdigits import evaluate as ev
from inkdigits.models import GANConfig, to_uint8
from inkdigits.train import Trainer


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--set", action="append", default=[], help="config field=value (JSON value)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = json.loads(value)
    cfg = GANConfig(**{"g_width": 32, "d_width": 32, "eval_per_class": 0, **overrides})
    t = Trainer(cfg, tempfile.mkdtemp(prefix="sweep-"), device="cpu", quiet=True)
    t.setup()
    order = torch.randperm(len(t.x), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for s in range(args.steps):
        i = (s * cfg.batch_size) % (len(t.x) - cfg.batch_size)
        idx = order[i : i + cfg.batch_size]
        loss_d, loss_g = t.gan_step(t.x[idx], t.y[idx])
        t.step += 1
    seconds = time.perf_counter() - start
    clf = ev.load_classifier()
    evaluator = ev.Evaluator(clf, t.mnist.x_test.numpy(), t.mnist.y_test.numpy(), max_per_class_diversity=200)
    gen = torch.Generator().manual_seed(777)
    z = torch.randn(1000, cfg.latent_dim, generator=gen)
    y = torch.arange(10).repeat_interleave(100)
    with torch.no_grad():
        imgs = to_uint8(t.G.eval()(z, y)).numpy()
    m = evaluator.metrics(imgs, y.numpy())
    desc = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "defaults"
    print("| config | steps | s | class acc | FID | diversity |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| {desc} (g{cfg.g_width}/d{cfg.d_width}) | {args.steps} | {seconds:.0f} | {m['class_acc']:.1%} | "
          f"{m['fid']:.2f} | {m['diversity']:.3f} |")
    assert np.isfinite(m["fid"])


if __name__ == "__main__":
    main()
