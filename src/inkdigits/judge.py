"""The run's judge: the reference classifier that scores the generator on the validation split at every
evaluation, and so picks the exported generator where ``--select`` is best (a large set's default).

MNIST runs use the shipped classifier. A run on its own data trains one on its training split first (seconds to
a minute for a small set), saves it in the run folder and reuses it on ``--resume``. ``--classifier PATH``
brings one; ``--classifier none`` turns scoring off, and the last evaluation is exported.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .config import ClassifierConfig, ClassifierTrainConfig
from .errors import InkdigitsError

RUN_CLASSIFIER = "classifier.safetensors"
SCORE_SEED = 777  # the fixed noise of every validation score, so scores of one run compare
OFF = "none"  # --classifier none
MIN_PER_CLASS = 2  # training images per class that a classifier can learn anything from


def check_given(classifier) -> None:
    """Fail at once, before data is read, on a ``--classifier`` path that holds nothing."""
    if classifier is not None and str(classifier) != OFF and not Path(classifier).is_file():
        raise InkdigitsError(f"{classifier}: no reference classifier there (give one with --classifier PATH, or "
                             f"--classifier none)")  # fmt: skip


def check_guidance(cfg, classifier) -> None:
    """Class guidance learns from the reference classifier, so it cannot run without one."""
    if cfg.guidance and str(classifier) == OFF:
        raise InkdigitsError(f"--guidance {cfg.guidance:g} needs a reference classifier: drop --classifier none "
                             f"(or pass --guidance 0)")  # fmt: skip


def make_judge(run_path: Path, cfg, model_cfg, spec, classes: list[str], classifier, x, y, x_val, y_val, log):
    """(score, reference): ``score(gan) -> {"fid", "class_acc", "selected_by"}`` on the validation split (says
    loudly when off), and the reference classifier (None without one), which class guidance also uses."""
    off = {"fid": None, "class_acc": None}
    reason = None  # a run with --guidance and --classifier none was refused before (check_guidance)
    if str(classifier) == OFF:
        reason = "--classifier none"
    elif cfg.eval_per_class == 0 or len(x_val) == 0:
        reason = "--eval-per-class 0" if cfg.eval_per_class == 0 else "--val-size 0"
    model = None
    if str(classifier) != OFF and (reason is None or cfg.guidance):
        model = reference_classifier(run_path, classifier, spec, classes, model_cfg, x, y, x_val, y_val, log)
    if reason:
        log(f"WARNING: per-step scores are off ({reason}): generator.safetensors will be the last evaluation's, "
            f"whatever its quality")  # fmt: skip
        return (lambda gan: {**off, "selected_by": f"last evaluation ({reason})"}), model
    from .evaluate import Evaluator

    evaluator = Evaluator(model, x_val.numpy(), y_val.numpy(), max_per_class_diversity=200)
    k, n = evaluator.num_classes, cfg.eval_per_class

    def score(gan) -> dict:
        z = torch.randn(n * k, gan.model_config.latent_dim, generator=torch.Generator().manual_seed(SCORE_SEED))
        labels = torch.arange(k).repeat_interleave(n)
        m = evaluator.metrics(gan.sample(z, labels), labels.numpy())
        chosen = "best validation FID" if cfg.select == "best" else f"last evaluation (--select {cfg.select})"
        return {"fid": m["fid"], "class_acc": m["class_acc"], "selected_by": chosen}

    return score, model


def reference_classifier(run_path: Path, classifier, spec, classes, model_cfg, x, y, x_val, y_val, log):
    """The given classifier, the shipped one for MNIST, or the run's own (trained now, or on resume reused)."""
    from .classifier import load_classifier_and_classes
    from .resources import default_classifier

    own = Path(run_path) / RUN_CLASSIFIER
    if classifier is None and spec.source != "mnist":
        if not own.is_file():
            train_run_classifier(own, classes, model_cfg, x, y, x_val, y_val, log)
        else:
            log(f"reference classifier: reusing {own}")
        path = own
    else:
        path = Path(classifier) if classifier else default_classifier()
        check_given(path)
    model, known = load_classifier_and_classes(path)
    if (model.config.num_classes, model.config.image_size) != (model_cfg.num_classes, model_cfg.image_size):
        raise InkdigitsError(f"{path}: a classifier for {model.config.num_classes} classes at {model.config.image_size} px, "
                             f"but the data has {model_cfg.num_classes} classes at {model_cfg.image_size} px")  # fmt: skip
    if known is not None and list(known) != list(classes):
        raise InkdigitsError(f"{path}: a classifier for classes {short(known)}, but the data's are {short(classes)}")
    return model


def train_run_classifier(path: Path, classes, model_cfg, x, y, x_val, y_val, log) -> None:
    from .classifier import accuracy, save_classifier, train_classifier

    counts = np.bincount(y.numpy(), minlength=len(classes))
    if counts.min() < MIN_PER_CLASS:
        k = int(counts.argmin())
        raise InkdigitsError(f"class '{classes[k]}' has {counts[k]} training image(s); the reference classifier needs "
                             f"at least {MIN_PER_CLASS} per class (add images, or pass --classifier none)")  # fmt: skip
    cfg = ClassifierTrainConfig()
    t0 = time.perf_counter()
    net = train_classifier(x, y, cfg, ClassifierConfig(num_classes=len(classes), image_size=model_cfg.image_size))
    acc = accuracy(net, x_val.numpy(), y_val.numpy())
    save_classifier(net, path, {"validation_accuracy": acc, "train": asdict(cfg), "classes": list(classes),
                                "trained_on": f"the run's {len(x)} training images"})  # fmt: skip
    log(f"reference classifier: trained on the {len(x):,} training images in {time.perf_counter() - t0:.0f} s, "
        f"{acc:.1%} on the {len(x_val):,} validation images -> {path}")  # fmt: skip


def short(names) -> str:
    names = [str(n) for n in names]
    return ", ".join(names[:6]) + (f", ... ({len(names)})" if len(names) > 6 else "")
