"""What neatness trades: class accuracy, precision, recall and FID of the generator at several neatness
levels (1000 samples per digit, seed 0, against the MNIST test set), with the real-data row.

    python benchmarks/neatness.py [--weights models/generator.safetensors] [--levels -0.4 0 0.25 0.5]
"""

import argparse

import numpy as np
import torch

from inkdigits import datasets, load_generator
from inkdigits import evaluate as ev
from inkdigits.classifier import load_classifier


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--weights")
    p.add_argument("--levels", type=float, nargs="+", default=[-0.6, -0.4, -0.2, 0.0, 0.25, 0.5, 0.75])
    p.add_argument("--per-class", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dry-run", action="store_true", help="20 per digit, three levels")
    args = p.parse_args()
    if args.dry_run:
        args.per_class, args.levels = 20, [-0.4, 0.0, 0.5]
    torch.set_num_threads(args.threads)
    g = load_generator(args.weights)
    mnist = datasets.load_mnist()
    evaluator = ev.Evaluator(load_classifier(), mnist.x_test.numpy(), mnist.y_test.numpy())
    labels = np.repeat(np.arange(g.num_classes), args.per_class)
    rows = {f"neatness {level:g}": evaluator.metrics(g.generate(labels, seed=0, neatness=level), labels)
            for level in args.levels}  # fmt: skip
    rx, ry = ev.real_reference_set(mnist.x_train.numpy(), mnist.y_train.numpy(), args.per_class)
    rows[f"real MNIST train ({args.per_class}/digit)"] = evaluator.metrics(rx, ry)
    print(f"weights: {g.path} ({args.per_class} per digit, seed 0)\n")
    print("| set | class acc | precision | recall | coverage | FID | diversity |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, m in rows.items():
        print(f"| {name} | {m['class_acc']:.2%} | {m['precision']:.3f} | {m['recall']:.3f} | {m['coverage']:.3f} | "
              f"{m['fid']:.3f} | {m['diversity']:.3f} |")


if __name__ == "__main__":
    main()
