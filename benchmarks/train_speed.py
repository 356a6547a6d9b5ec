"""Training throughput (images/s) of the default GAN config on this machine's CPU.

    python benchmarks/train_speed.py [--threads 2] [--steps 60]
    python benchmarks/train_speed.py --compare REV      # REV's code and this one's, alternating, in one run
    python benchmarks/train_speed.py --recipe small     # the small-set recipe's step (minibatch std, ADA, ...)
Run it on an otherwise idle machine: another torch job on the same cores halves the figure or worse. With
--compare, a git worktree of REV is timed by this same script (its src/ first on the path), three rounds in
turn, so the machine's drift of the day falls on both rows alike.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import torch

from inkdigits.config import ModelConfig, TrainConfig
from inkdigits.gan import ConditionalGAN

SMALL_SET = 1_000  # training images of the small-set recipe's step (MNIST 100 a class, as in small_data.py)
SMALL_SET_ADA_P = 0.1  # ADA's probability held there: about where it sits on that set (RESULTS section 11)


def build(recipe_name: str) -> ConditionalGAN:
    """The GAN of a run with the given recipe: full MNIST's or a small set's (its model and training options, as
    `inkdigits train` would choose them), without data."""
    known = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in {"augment": "none"}.items() if k in known})  # older code: no such field
    model = ModelConfig()
    if recipe_name == "small":
        from inkdigits.config import recipe  # here: --compare may time code older than the recipe

        batch = TrainConfig().batch_size
        model, cfg, _ = recipe(model, TrainConfig(), SMALL_SET, SMALL_SET // batch)
    gan = ConditionalGAN(model, cfg)
    if recipe_name == "small":
        gan.ada.p = SMALL_SET_ADA_P
    return gan


def time_steps(threads: int, steps: int, warmup: int, recipe_name: str = "full") -> dict:
    """ms per training step of a recipe on synthetic batches (pixel values do not change the cost)."""
    torch.set_num_threads(threads)
    gan = build(recipe_name)
    cfg = gan.config
    x = torch.randint(0, 256, (cfg.batch_size, 28, 28), dtype=torch.uint8)
    y = torch.randint(0, 10, (cfg.batch_size,))
    for _ in range(warmup):
        gan.train_step(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        gan.train_step(x, y)
    dt = (time.perf_counter() - start) / steps
    return {"ms": dt * 1000, "batch": cfg.batch_size, "g": sum(p.numel() for p in gan.G.parameters()),
            "d": sum(p.numel() for p in gan.D.parameters())}  # fmt: skip


def compare(rev: str, args) -> None:
    """Time REV's library and this one's with this script, alternating rounds; print both rows and the ratio."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="train-speed-") as tmp:
        tree = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(tree), rev], check=True,
                       capture_output=True)  # fmt: skip
        try:
            runs = {rev: [], "this tree": []}
            for _ in range(args.rounds):
                for name, src in ((rev, tree / "src"), ("this tree", root / "src")):
                    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(args.threads)}
                    out = subprocess.run([sys.executable, __file__, "--json", "--threads", str(args.threads), "--steps",
                                          str(args.steps), "--warmup", str(args.warmup), "--recipe", args.recipe],
                                         env=env, capture_output=True, text=True, check=True)  # fmt: skip
                    runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)], capture_output=True)
    print(f"{args.recipe} recipe's step; {args.rounds} rounds of {args.steps} steps each, alternating; median ms/step\n")
    print("| code | threads | ms/step (median) | rounds | images/s | speed-up |")
    print("|---|---:|---:|---|---:|---:|")
    base = statistics.median(r["ms"] for r in runs[rev])
    for name, rows in runs.items():
        ms = statistics.median(r["ms"] for r in rows)
        rounds = ", ".join(f"{r['ms']:.0f}" for r in rows)
        print(f"| {name} | {args.threads} | {ms:.1f} | {rounds} | {rows[0]['batch'] / ms * 1000:.0f} | {base / ms:.2f}x |")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--recipe", choices=("full", "small"), default="full",
                   help=f"full MNIST's step, or a small set's ({SMALL_SET:,} images, ADA p held at {SMALL_SET_ADA_P})")
    p.add_argument("--compare", metavar="REV", help="also time git revision REV's code, in turn with this tree's")
    p.add_argument("--rounds", type=int, default=3, help="--compare: rounds of each")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one run's figures, for --compare
    p.add_argument("--dry-run", action="store_true", help="a few steps, to check that the script works")
    args = p.parse_args()
    if args.dry_run:
        args.steps, args.warmup, args.rounds = 3, 1, 1
    if args.compare:
        return compare(args.compare, args)
    if args.json:
        return print(json.dumps(time_steps(args.threads, args.steps, args.warmup, args.recipe)))
    print("| machine | torch | recipe | threads | G params | D params | batch | ms/step | images/s | s/epoch (55k) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for recipe_name in ("full", "small") if args.dry_run else (args.recipe,):  # the dry run keeps both alive
        r = time_steps(args.threads, args.steps, args.warmup, recipe_name)
        dt = r["ms"] / 1000
        print(f"| {platform.machine()} x{os.cpu_count()} CPU | {torch.__version__} | {recipe_name} | {args.threads} | "
              f"{r['g'] / 1e6:.2f} M | {r['d'] / 1e6:.2f} M | {r['batch']} | {r['ms']:.1f} | {r['batch'] / dt:.0f} | "
              f"{55000 / (r['batch'] / dt):.0f} |")


if __name__ == "__main__":
    main()
