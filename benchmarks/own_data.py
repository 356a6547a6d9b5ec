"""Your own data, end to end: a labelled image set this script draws itself (five classes of hand-drawn-looking
shapes), written as class folders of PNGs, read by `--data`, a reference classifier trained on it, the GAN
trained on it for a few minutes, and the samples scored by that classifier against the set's test split.

    python benchmarks/own_data.py [--images 4000] [--epochs 6] [--threads 2]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from inkdigits import classifier as clf
from inkdigits import datasets, load_generator
from inkdigits import evaluate as ev
from inkdigits.config import ClassifierConfig, ClassifierTrainConfig, DataSpec
from inkdigits.train import train

SHAPES = ["circle", "square", "triangle", "cross", "zigzag"]


def draw(shape: str, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """One shape in white strokes on black, with a random centre, size, stroke width and wobble."""
    img = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(img)
    cx, cy = rng.uniform(11, 17, 2)
    r = rng.uniform(6, 10)
    w = int(rng.integers(2, 4))

    def wobble(points):
        return [(x + rng.normal(0, 0.7), y + rng.normal(0, 0.7)) for x, y in points]

    if shape == "circle":
        d.ellipse([cx - r, cy - r * rng.uniform(0.8, 1.2), cx + r, cy + r], outline=255, width=w)
    elif shape == "square":
        d.line(wobble([(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r), (cx - r, cy - r)]),
               fill=255, width=w)  # fmt: skip
    elif shape == "triangle":
        d.line(wobble([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r), (cx, cy - r)]), fill=255, width=w)
    elif shape == "cross":
        d.line(wobble([(cx - r, cy - r), (cx + r, cy + r)]), fill=255, width=w)
        d.line(wobble([(cx + r, cy - r), (cx - r, cy + r)]), fill=255, width=w)
    else:
        xs = np.linspace(cx - r, cx + r, 5)
        d.line(wobble([(x, cy + (r / 2 if i % 2 else -r / 2)) for i, x in enumerate(xs)]), fill=255, width=w)
    return np.asarray(img)


def write_folders(root: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for k, shape in enumerate(SHAPES):
        (root / shape).mkdir(parents=True)
        for i in range(n // len(SHAPES)):
            Image.fromarray(draw(shape, rng)).save(root / shape / f"{k}-{i:05d}.png")
    return root


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dry-run", action="store_true", help="300 images, one epoch of a tiny model")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tiny = {"g_width": 8, "d_width": 8} if args.dry_run else {}
    n, epochs = (300, 1) if args.dry_run else (args.images, args.epochs)
    work = Path(tempfile.mkdtemp(prefix="own-data-"))
    source = write_folders(work / "shapes", n)
    spec = DataSpec(str(source))
    data = datasets.load(spec, log=lambda m: None)
    t0 = time.perf_counter()
    cfg = ClassifierTrainConfig(epochs=1 if args.dry_run else 5)
    model = clf.train_classifier(data.x_train, data.y_train, cfg, ClassifierConfig(num_classes=len(SHAPES)))
    clf_acc = clf.accuracy(model, data.x_test.numpy(), data.y_test.numpy())
    clf.save_classifier(model, work / "classifier.safetensors", {"test_accuracy": clf_acc, "classes": data.classes})
    clf_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    history = train(work / "run", {**tiny, "epochs": epochs, "eval_per_class": 50}, data={"source": str(source)},
                    classifier=work / "classifier.safetensors", quiet=True).history  # fmt: skip
    gan_seconds = time.perf_counter() - t0
    g = load_generator(work / "run" / "generator.safetensors")
    per_class = 20 if args.dry_run else 500
    labels = np.repeat(np.arange(len(SHAPES)), per_class)
    result = ev.run_evaluation(g.generate(labels, seed=0), labels, data, model, per_class_ref=per_class,
                               log=lambda m: None)  # fmt: skip
    info = json.loads((work / "run" / "generator.json").read_text())
    print(f"data: {n} drawn shapes ({', '.join(data.classes)}) as class folders of 28x28 PNGs; "
          f"{len(data.x_train)} train / {len(data.x_test)} test")
    print(f"reference classifier: {clf_acc:.2%} on the test split ({clf_seconds:.0f} s); GAN: {epochs} epochs in "
          f"{gan_seconds / 60:.1f} min, exported epoch {info['epoch']} ({info['selected_by']})\n")
    print(ev.format_table({f"generator ({per_class}/class)": result["samples"],
                           f"real shapes ({per_class}/class)": result["reference"]}, data.classes))  # fmt: skip
    print("\nper-epoch validation class accuracy: " + " ".join(f"{r['class_acc']:.1%}" for r in history))


if __name__ == "__main__":
    main()
