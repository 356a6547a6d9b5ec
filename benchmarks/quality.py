"""Quality of a generator against real MNIST, with the real-data reference row.

    python benchmarks/quality.py [--weights models/generator.safetensors] [--per-class 1000] [--cas]
        [--save-metrics]   # store the figures in NAME.metrics.json beside the weights (the app shows them)
        [--standing-stats 200]   # first recompute G's BatchNorm statistics from its own weights (RESULTS 14)
        [--neatness -0.4]   # samples spread wider (below 0) or narrower than the model learned

Same metrics as `inkdigits evaluate` (see src/inkdigits/evaluate.py), plus a pass/fail line against the
shipping bar: class acc >= 99% (every digit >= 97%), FID <= 10x real, diversity >= 0.90, CAS within 1.5 pt.
"""

import argparse
import json
import sys
import time

import numpy as np
import torch

from inkdigits import datasets, load_generator
from inkdigits import evaluate as ev
from inkdigits.classifier import load_classifier
from inkdigits.fileio import atomic_write_text
from inkdigits.limits import NEATNESS
from inkdigits.weights import metrics_path


def independent_check(images, labels, mnist, epochs: int = 8, seed: int = 1) -> tuple[float, float, float]:
    """A second judge with nothing in common with the reference CNN: an MLP on raw pixels.

    Returns (its accuracy on real test digits, on the samples, on the 1000/digit real reference set)."""
    from torch import nn

    torch.manual_seed(seed)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 256), nn.ReLU(),
                        nn.Dropout(0.2), nn.Linear(256, 10))  # fmt: skip
    opt = torch.optim.Adam(mlp.parameters(), lr=1e-3)
    x, y = mnist.x_train.float() / 255, mnist.y_train
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 128):
            idx = order[i : i + 128]
            loss = nn.functional.cross_entropy(mlp(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    mlp.eval()

    def acc(imgs, labs):
        with torch.no_grad():
            pred = mlp(torch.as_tensor(np.asarray(imgs)).float() / 255).argmax(1).numpy()
        return float((pred == np.asarray(labs)).mean())

    rx, ry = ev.real_reference_set(mnist.x_train.numpy(), mnist.y_train.numpy(), 1000)
    return acc(mnist.x_test, mnist.y_test.numpy()), acc(images, labels), acc(rx, ry)


def standing_stats(net: torch.nn.Module, batches: int, num_classes: int, latent_dim: int, seed: int = 12345) -> None:
    """BigGAN's "standing statistics": the exported generator is a moving average of G's weights, but its
    BatchNorm statistics are the raw G's. Replace them by the average over ``batches`` batches of 64 of the
    averaged weights' own activations."""
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average
    gen = torch.Generator().manual_seed(seed)
    net.train()
    with torch.no_grad():
        for _ in range(batches):
            net(torch.randn(64, latent_dim, generator=gen), torch.randint(0, num_classes, (64,), generator=gen))
    net.eval()


def bar(s: dict, r: dict) -> list[tuple[str, bool]]:
    checks = [
        ("class acc >= 99%", s["class_acc"] >= 0.99),
        ("every digit >= 97%", min(s["class_acc_per_digit"]) >= 0.97),
        ("FID <= 10x real", s["fid_ratio"] <= 10),
        ("diversity >= 0.90", s["diversity"] >= 0.90),
    ]
    if "cas" in s:
        checks.append(("CAS within 1.5 pt of real", r["cas"] - s["cas"] <= 0.015))
    return checks


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--weights")
    p.add_argument("--per-class", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cas", action="store_true")
    p.add_argument("--neatness", type=float, default=NEATNESS.default,
                   help="of the samples (default: the model's own variety); not with --save-metrics")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save-metrics", action="store_true")
    p.add_argument("--standing-stats", type=int, default=0, metavar="BATCHES",
                   help="recompute G's BatchNorm statistics over this many batches first (not with --save-metrics)")
    p.add_argument("--dry-run", action="store_true", help="20 per digit and short trainings; never saves")
    args = p.parse_args()
    if args.dry_run:
        args.per_class, args.save_metrics = 20, False
    if args.neatness != NEATNESS.default and args.save_metrics:
        p.error("--save-metrics stores the figures of the model's own variety: leave out --neatness")
    if args.standing_stats and args.save_metrics:
        p.error("--save-metrics stores the figures of the weights as they are: leave out --standing-stats")
    torch.set_num_threads(args.threads)
    t0 = time.time()
    g = load_generator(args.weights)
    if args.standing_stats:
        standing_stats(g.net, args.standing_stats, g.num_classes, g.latent_dim)
    mnist = datasets.load_mnist()
    labels = np.repeat(np.arange(10), args.per_class)
    images = g.generate(labels, seed=args.seed, neatness=args.neatness)
    result = ev.run_evaluation(images, labels, mnist, load_classifier(), with_cas=args.cas,
                               cas_epochs=1 if args.dry_run else ev.CAS_EPOCHS)  # fmt: skip
    s, r = result["samples"], result["reference"]
    stats = f", BatchNorm statistics over {args.standing_stats} batches" if args.standing_stats else ""
    stats += f", neatness {args.neatness:g}" if args.neatness != NEATNESS.default else ""
    print(f"weights: {g.path}  ({args.per_class} per digit, seed {args.seed}{stats})\n")
    print(ev.format_table({"inkdigits generator": s, "real MNIST train (1000/digit)": r}))
    print("\nper-digit class acc: " + " ".join(f"{d}:{a:.1%}" for d, a in enumerate(s["class_acc_per_digit"])))
    print("bar: " + ", ".join(f"{name} {'PASS' if ok else 'FAIL'}" for name, ok in bar(s, r)))
    mlp_test, mlp_samples, mlp_real = independent_check(images, labels, mnist, epochs=1 if args.dry_run else 8)
    print(f"independent judge (pixel MLP, {mlp_test:.2%} on MNIST test): reads {mlp_samples:.2%} of the samples "
          f"as the requested digit (real train digits: {mlp_real:.2%})")
    print(f"({time.time() - t0:.0f} s)")
    if args.save_metrics:
        keep = ("class_acc", "class_acc_per_digit", "fid", "fid_ratio", "fid_per_class", "diversity", "precision",
                "recall", "density", "coverage", "cas")
        metrics = {k: s[k] for k in keep if k in s}
        metrics["reference"] = {k: r[k] for k in keep if k in r}
        metrics["independent_mlp_class_acc"] = mlp_samples
        metrics["command"] = "python benchmarks/quality.py " + " ".join(sys.argv[1:])
        atomic_write_text(metrics_path(g.path), json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        print(f"saved metrics into {metrics_path(g.path)}")


if __name__ == "__main__":
    main()
