"""How much data does inkdigits need? Small labelled sets trained the user's way, judged against held-out images.

    python benchmarks/small_data.py                            # mnist100, mnist500, shapes; the default recipe
    python benchmarks/small_data.py --sets mnist100 --set augment=none      # one change, for RESULTS.md
    python benchmarks/small_data.py --sets shapes --minutes 5                # the --minutes budget

Each set is written to disk as a user would bring it and trained with `inkdigits train --data SET --out RUN`
in a subprocess (the default recipe: its own reference classifier for non-MNIST data, ADA, the step budget):
- mnist100 / mnist500: 100 or 500 MNIST training images per class, stratified and seeded, in an .npz;
- shapes: 4 classes x 800 drawn shapes (benchmarks/own_data.py's drawings) as class folders of PNGs.
The exported generator is judged by a classifier trained separately from the run (the shipped MNIST one; for
shapes, one trained on 4 x 1000 other drawings) against held-out real images (the MNIST test set; 4 x 500 other
drawings): class accuracy, FID / real, precision and recall. Under each set, its own images (each once) judged
the same way: what a generator that memorised the set would score. FID, precision and recall depend on how many
images are judged (fewer points: wider k-NN balls, a higher FID), so the generator is judged once more on as many
samples a class as the set has images, and both of those rows take FID / real from real images of that count.
Last, the own images warped (rotation, scale, slant) into as many samples a class as the generator is judged on:
what a generator that memorised its set and jittered it would score. Prints one Markdown table.
"""

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from own_data import draw  # noqa: E402

from inkdigits import classifier as clf  # noqa: E402
from inkdigits import datasets, load_generator  # noqa: E402
from inkdigits import evaluate as ev  # noqa: E402
from inkdigits.augment import warp  # noqa: E402
from inkdigits.config import ClassifierConfig, ClassifierTrainConfig  # noqa: E402
from inkdigits.datasets import Dataset  # noqa: E402
from inkdigits.models import to_uint8, to_unit  # noqa: E402

SHAPES = ["circle", "cross", "square", "triangle"]
SETS = ("mnist100", "mnist500", "shapes")
WARPED_OWN = (1.0, 2.0, 3.0)  # strengths of the jittered-copies rows (times --warp's bounds)


def mnist_subset(mnist, per_class: int, path: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write ``per_class`` images of every digit from MNIST train, shuffled, with MNIST test as the test split, to
    ``path``; return the training images and labels written."""
    rng = np.random.default_rng(seed)
    y = mnist.y_train.numpy()
    idx = np.concatenate([rng.choice(np.flatnonzero(y == d), per_class, replace=False) for d in range(10)])
    idx = rng.permutation(idx)
    x, y = mnist.x_train.numpy()[idx], y[idx]
    np.savez(path, x_train=x, y_train=y, x_test=mnist.x_test.numpy(), y_test=mnist.y_test.numpy())
    return x, y


def shapes_arrays(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.stack([draw(s, rng) for s in SHAPES for _ in range(per_class)])
    return x, np.repeat(np.arange(len(SHAPES)), per_class)


def shapes_folders(root: Path, x: np.ndarray, y: np.ndarray) -> None:
    """The shapes as a user brings them: a folder of PNGs per class."""
    for k, name in enumerate(SHAPES):
        (root / name).mkdir(parents=True)
        for i, img in enumerate(x[y == k]):
            Image.fromarray(img).save(root / name / f"{i:05d}.png")


def shapes_judge(per_class: int):
    """Real shapes the run never sees (reference and test), and a classifier trained on them alone."""
    xr, yr = shapes_arrays(per_class, seed=1)
    xt, yt = shapes_arrays(max(1, per_class // 2), seed=2)
    t = {k: torch.from_numpy(v) for k, v in {"xr": xr, "yr": yr, "xt": xt, "yt": yt}.items()}
    real = Dataset(t["xr"], t["yr"].long(), t["xt"], t["yt"].long(), "shapes (held out)", SHAPES)
    model = clf.train_classifier(xr, yr, ClassifierTrainConfig(epochs=5), ClassifierConfig(num_classes=len(SHAPES)))
    return real, model


class Judged:
    """Metrics of image sets against one set's held-out images, with FID / real against real training images of
    the same count per class: the held-out features once, each count's reference once."""

    def __init__(self, real: Dataset, judge):
        self.real, self.reference_fid = real, {}
        self.evaluator = ev.Evaluator(judge, real.x_test.numpy(), real.y_test.numpy())

    def __call__(self, images, labels, per_class: int) -> dict:
        if per_class not in self.reference_fid:
            rx, ry = ev.real_reference_set(self.real.x_train.numpy(), self.real.y_train.numpy(), per_class)
            self.reference_fid[per_class] = self.evaluator.metrics(rx, ry)["fid"]
        m = self.evaluator.metrics(images, labels)
        ref = self.reference_fid[per_class]
        return {**m, "fid_ratio": m["fid"] / ref if ref > 0 else float("inf")}


def samples(g, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` samples of every class from generator ``g`` (seed 0), and their labels."""
    labels = np.repeat(np.arange(g.num_classes), per_class)
    return g.generate(labels, seed=0), labels


def warped_copies(x: np.ndarray, y: np.ndarray, per_class: int, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` images of every class made from the set's own by --warp's transform at ``strength`` times its
    bounds (each image used in turn): a generator that memorised its set and jitters it."""
    idx = np.concatenate([np.resize(np.flatnonzero(y == c), per_class) for c in np.unique(y)])
    images = to_unit(torch.from_numpy(x[idx]))
    return to_uint8(warp(images, 1.0, torch.Generator().manual_seed(0), strength)).numpy(), y[idx]


def train_run(source: Path, out: Path, threads: int, sets: list[str], minutes: float | None) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "inkdigits", "train", "--data", str(source), "--out", str(out),
           "--threads", str(threads)]  # fmt: skip
    for item in sets:
        key, value = item.split("=", 1)
        flag = f"--{key.replace('_', '-')}"
        cmd += [flag] if value == "true" else [flag, value]  # a switch such as d_minibatch_std=true
    if minutes:
        cmd += ["--minutes", str(minutes)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    recipe = next((line for line in done.stderr.splitlines() if line.startswith("recipe ")), "?")
    return time.perf_counter() - t0, recipe


def main():
    # `kill` of this script must not leave its training run behind: as an exception, subprocess.run kills it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)}")
    p.add_argument("--set", action="append", default=[], help="a train flag as KEY=VALUE (augment=none, steps=6000)")
    p.add_argument("--minutes", type=float, help="pass --minutes to the training run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--keep", type=Path, help="keep the data and runs in this folder")
    p.add_argument("--dry-run", action="store_true", help="tiny sets and a tiny model for a few steps")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    names = [s for s in args.sets.split(",") if s]
    unknown = sorted(set(names) - set(SETS))
    if unknown:
        raise SystemExit(f"unknown set {unknown[0]} (choose from {', '.join(SETS)})")
    sets = list(args.set)
    if args.dry_run:
        sets += ["g_width=8", "d_width=8", "steps=6", "eval_every=3", "batch_size=16", "eval_per_class=5"]
    work = args.keep or Path(tempfile.mkdtemp(prefix="small-data-"))
    work.mkdir(parents=True, exist_ok=True)
    per_class_eval = 20 if args.dry_run else 1000
    mnist = None
    rows = []
    for name in names:
        run = work / f"run-{name}"
        if name.startswith("mnist"):
            mnist = mnist or datasets.load_mnist()
            per_class = 10 if args.dry_run else int(name[5:])
            source = work / f"{name}.npz"
            own = mnist_subset(mnist, per_class, source)
            real, judge = mnist, clf.load_classifier()
            n_images = 10 * per_class
        else:
            per_class = 20 if args.dry_run else 800
            source, own = work / name, shapes_arrays(per_class, seed=0)
            shapes_folders(source, *own)
            real, judge = shapes_judge(50 if args.dry_run else 1000)
            n_images = len(SHAPES) * per_class
            per_class_eval = 20 if args.dry_run else 500
        seconds, recipe = train_run(source, run, args.threads, sets, args.minutes)
        g = load_generator(run / "generator.safetensors")
        judged = Judged(real, judge)
        info = json.loads((run / "generator.json").read_text())
        rows.append((name, n_images, seconds / 60, info["step"], judged(*samples(g, per_class_eval), per_class_eval),
                     recipe))  # fmt: skip
        # The ceiling: the set's own images, each once, judged the same way (a generator that memorised them).
        # Precision and recall depend on the count (fewer points, wider k-NN balls), so the generator is also
        # judged on as many samples per class as the set has images.
        own_per_class = n_images // g.num_classes
        if own_per_class != per_class_eval:
            rows.append((f"{name}: {own_per_class} samples a class, as many as its images", n_images, 0.0, 0,
                         judged(*samples(g, own_per_class), own_per_class), None))  # fmt: skip
        rows.append((f"{name}: its own images", n_images, 0.0, 0, judged(*own, own_per_class), None))
        # Copies that jitter: the own images warped into as many samples as the generator is judged on.
        for strength in WARPED_OWN:
            copies = warped_copies(*own, per_class_eval, strength)
            rows.append((f"{name}: its own images warped ({strength:g}x --warp's bounds), {per_class_eval} a class",
                         n_images, 0.0, 0, judged(*copies, per_class_eval), None))  # fmt: skip
        if not args.keep:
            shutil.rmtree(run, ignore_errors=True)
    flags = " ".join(f"--{x.split('=')[0].replace('_', '-')} {x.split('=', 1)[1]}" for x in args.set) or "(defaults)"
    print(f"`inkdigits train --data SET {flags}{f' --minutes {args.minutes:g}' if args.minutes else ''}`, "
          f"{args.threads} threads; judged against held-out real images (MNIST: 1000 samples per class, "
          f"shapes: 500)\n")
    print("| set | images | minutes | exported step | class acc | worst class | FID / real | precision | recall |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, minutes, step, s, recipe in rows:
        trained = f"{minutes:.1f} | {step:,}" if recipe else "— | —"
        print(f"| {name} | {n:,} | {trained} | {s['class_acc']:.2%} | {min(s['class_acc_per_digit']):.2%} | "
              f"{s['fid_ratio']:.1f}x | {s['precision']:.3f} | {s['recall']:.3f} |")
    print()
    for name, *_, recipe in rows:
        if recipe:
            print(f"{name}: {recipe}")


if __name__ == "__main__":
    main()
