"""``inkdigits evaluate`` and ``inkdigits evaluate train-classifier``, for MNIST or any dataset (--data)."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import classifier as clf
from . import datasets
from . import evaluate as ev
from .cli_args import data_spec, given_flags
from .config import DIGITS, METRICS_PER_CLASS, ClassifierConfig, ClassifierTrainConfig, DataSpec, from_dict
from .errors import InkdigitsError
from .judge import RUN_CLASSIFIER
from .resources import default_classifier
from .rundir import check_writable


def train_classifier_command(args) -> int:
    spec = data_spec(args)
    if spec.source != "mnist" and args.out is None:
        raise InkdigitsError("--out is needed for a classifier of your own data (the default is the shipped MNIST one)")
    out = Path(args.out or default_classifier())
    check_file_writable(out, ".safetensors")  # before the training, not after it
    dataset = datasets.load(spec)
    cfg = ClassifierTrainConfig(seed=args.seed, **({"epochs": args.epochs} if args.epochs else {}))
    model_cfg = ClassifierConfig(num_classes=len(dataset.classes), image_size=int(dataset.x_train.shape[-1]))
    model = clf.train_classifier(dataset.x_train, dataset.y_train, cfg, model_cfg, progress=True)
    acc = clf.accuracy(model, dataset.x_test.numpy(), dataset.y_test.numpy())
    data_flags = "".join(" " + f for f in given_flags(args, DataSpec))
    command = f"inkdigits evaluate train-classifier{data_flags} --epochs {cfg.epochs} --seed {cfg.seed}"
    try:
        clf.save_classifier(model, out, {"test_accuracy": acc, "train": asdict(cfg), "command": command,
                                         "data": asdict(spec), "classes": dataset.classes})  # fmt: skip
    except OSError as e:
        raise InkdigitsError(f"{out}: cannot write ({e.strerror or e})") from None
    print(f"test accuracy {acc:.2%}; wrote {out}")
    return 0


def evaluate_command(args) -> int:
    # The user's files first, before the slow part (dataset, classifier features).
    g = None
    if not args.samples:
        from .sample import load_generator

        g = load_generator(args.weights)
    saved = (g.info.get("data") if g else None) or {}
    spec = data_spec(args, from_dict(DataSpec, saved, str(g.path) if g else "data"))
    run_classifier = g.path.parent / RUN_CLASSIFIER if g else None
    if spec.source != "mnist" and args.classifier is None and run_classifier and run_classifier.is_file():
        args.classifier = run_classifier  # the judge its training run trained on the same data
        print(f"reference classifier: {run_classifier} (from the training run)", file=sys.stderr)
    if spec.source != "mnist" and args.classifier is None:
        raise InkdigitsError(f"the shipped classifier knows only MNIST: pass --classifier for {spec.source} (train one "
                             f"with `inkdigits evaluate train-classifier --data {spec.source} --out PATH`)")  # fmt: skip
    classifier = clf.load_classifier(args.classifier)
    k, size = classifier.config.num_classes, classifier.config.image_size
    if g is not None:
        if (g.num_classes, g.config.image_size) != (k, size):
            raise InkdigitsError(f"{g.path}: draws {g.num_classes} classes at {g.config.image_size} px, but the "
                                 f"classifier knows {k} classes at {size} px")  # fmt: skip
        labels = np.repeat(np.arange(k), args.per_class)
        images = g.generate(labels, seed=args.seed)
        name = f"{g.path.name} ({args.per_class}/class, seed {args.seed})"
    else:
        images, labels = ev.load_samples(args.samples, k, size)
        name = str(args.samples)
    log = (lambda m: print(m, file=sys.stderr)) if args.json else print  # --json: stdout holds the JSON alone
    dataset = datasets.load(spec, log)
    result = ev.run_evaluation(images, labels, dataset, classifier, with_cas=args.cas,
                               reference=not args.no_reference, log=log)  # fmt: skip
    if args.json:
        print(ev.to_json(result))
    else:
        rows = {name: result["samples"]}
        if "reference" in result:
            rows[f"real {spec.source} train ({METRICS_PER_CLASS}/class)"] = result["reference"]
        print(ev.format_table(rows, None if dataset.classes == DIGITS else dataset.classes))
    return 0


def check_file_writable(path: Path, suffix: str) -> None:
    """``path`` (a file to be written, with its .json beside it) can be written: a name ending in ``suffix``
    whose folder exists or can be made, is writable and has room."""
    if path.suffix != suffix:
        raise InkdigitsError(f"{path}: --out must end in {suffix}")
    if path.is_dir():
        raise InkdigitsError(f"{path}: is a folder; --out names a {suffix} file")
    check_writable(path.parent)
