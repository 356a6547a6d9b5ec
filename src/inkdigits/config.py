"""The one place where defaults live.

``ModelConfig`` is what the weights need to be rebuilt (it is stored beside every exported generator);
``TrainConfig`` is how a run trains (stored in its checkpoint). ``ClassifierConfig`` and
``ClassifierTrainConfig`` do the same for the reference classifier. Networks take these objects and have no
defaults of their own; the CLI derives its ``train`` flags from the fields' metadata, so a new field cannot
be forgotten there.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from .errors import InkdigitsError

DIGITS = [str(d) for d in range(10)]  # MNIST's class names, and the default of weights and sets without names


# The recipe: how long a run trains and how D is kept from memorising, by the number of training images.
DEFAULT_EPOCHS = 35  # what full MNIST needs (RESULTS section 5)
MIN_STEPS = 3_000  # a small set needs this many updates however few its images (RESULTS section 11)
MIN_EVAL_EVERY = 250  # steps: scoring every epoch of a small set cost half of its training time
SMALL_DATA = 20_000  # training images below which the small-set recipe applies (RESULTS section 11)
SMALL_DATA_DECAY = 1 / 3  # share of a small set's run over which the learning rates fall to 0
LR = 2e-4  # both networks' Adam learning rate on a large set (RESULTS section 2)
SMALL_DATA_LR = 1.6e-3  # a small set's: its few thousand steps learn more at a higher rate (RESULTS section 11)
SMALL_DATA_DIVERSITY = 0.2  # mode-seeking weight on a small set: shapes drew one image a class without (RESULTS 11)
METRICS_PER_CLASS = 1000  # samples (and real images) per class behind a metrics file (inkdigits evaluate)

# Data shapes a run accepts, and the validation split held out for model selection.
CLASSES = (2, 100)
IMAGE_SIZES = (16, 64)  # pixels a side, a multiple of 4
VAL_SHARE, VAL_MAX = 0.1, 5000  # the default split: 10 % of the training images, at most 5000

SMALL_DATA_MODEL = {"d_minibatch_std": True}  # a small set's generator collapses to one image per class without it


def option(default, help: str, lo=None, hi=None, choices=None, cli: bool = True, positive: bool = False,
           flag: str | None = None):  # fmt: skip
    """A dataclass field that also describes its command-line flag (range, choices, help, name)."""
    meta = {"help": help, "lo": lo, "hi": hi, "choices": choices, "cli": cli, "positive": positive, "flag": flag}
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    """What the generator's and discriminator's weights need: saved beside every exported generator."""

    latent_dim: int = option(64, "size of the style (noise) vector", 1, 4096)
    g_width: int = option(48, "generator channels at full size (x2, x4 at the smaller stages)", 1, 1024)
    g_depth: int = option(0, "3x3 conv layers (with class-conditional BatchNorm) after each of G's two upsamplings",
                          0, 8)
    d_width: int = option(48, "discriminator channels at half size (x2, x4 deeper)", 1, 1024)
    embed_dim: int = option(16, "size of the label embedding concatenated to z", 1, 1024)
    d_minibatch_std: bool = option(False, "discriminator sees each group of 4 images' feature spread (ProGAN's "
                                   "minibatch std), so it can tell a generator that ignores its noise")
    d_dropout: float = option(0.0, "dropout on the discriminator's features before its head (0: off)", 0.0, 0.9)
    num_classes: int = option(10, "number of classes", *CLASSES, cli=False)
    image_size: int = option(28, "image height and width in pixels (a multiple of 4)", *IMAGE_SIZES, cli=False)

    def __post_init__(self):
        if self.image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {self.image_size}")


@dataclass
class TrainConfig:
    """How a run trains: saved in its checkpoint and beside its exported generator."""

    steps: int | None = option(None, "optimiser steps to train (default: the recipe for the data's size, see "
                               "recipe()); with --resume: extend the run to this many", 1, 10**9)
    epochs: int | None = option(None, "train this many epochs instead of --steps", 1, 10_000)
    eval_every: int | None = option(None, "steps between validation scores, samples and checkpoints (default: one "
                                    f"epoch, at least {MIN_EVAL_EVERY})", 1, 10**9)
    batch_size: int = option(64, "global batch (split over DDP processes)", 1, 65_536)
    lr_g: float | None = option(None, f"generator learning rate (default: {LR:g}; {SMALL_DATA_LR:g} on a small set)",
                                positive=True)
    lr_d: float | None = option(None, f"discriminator learning rate (default: {LR:g}; {SMALL_DATA_LR:g} on a small "
                                "set)", positive=True)
    beta1: float = option(0.0, "Adam beta1 of both networks", 0.0, 0.9999)
    beta2: float = option(0.999, "Adam beta2 of both networks", 0.0, 0.9999)
    loss: str = option("hinge", "GAN loss", choices=("hinge", "bce"))
    augment: str = option("auto", "augment D's real and fake inputs: ada (adaptive, Karras et al. 2020), none, or "
                          f"auto (ada below {SMALL_DATA:,} training images)", choices=("auto", "ada", "none"))
    ada_target: float = option(0.6, "ADA raises the augmentation probability while E[sign(D(real))] is above this",
                               -1.0, 1.0)
    warp: float = option(0.0, "share of training images given a small random rotation, scale and slant each time "
                         "D sees them; unlike --augment, G learns these (0: off)", 0.0, 1.0)
    diversity: float | None = option(None, "weight of the mode-seeking term (Mao et al. 2019): G is paid for drawing "
                                     "two noises of one class apart (0: off; default: the recipe's)", 0.0, 100.0)
    guidance: float = option(0.0, "weight of the run's reference classifier's cross-entropy on G's images in G's "
                             "loss (class guidance; 0: off; needs a classifier)", 0.0, 100.0)
    consistency: float = option(0.0, "weight of balanced consistency regularisation (bCR, Zhao et al. 2020): D "
                                "pays for scoring an augmented image unlike the image itself, real and fake (0: off)",
                                0.0, 1000.0)
    r1_gamma: float = option(0.0, "R1 penalty on real images (0: off), applied lazily every 16 steps", 0.0, 1000.0)
    lr_decay_epochs: int | None = option(None, "decay both learning rates linearly to 0 over the last N epochs "
                                         "(default: a small set's last third, else 0)", 0, 10**9)
    select: str = option("auto", "which evaluation's generator is exported as generator.safetensors: best (lowest "
                         "validation FID), last, or auto (last on a small set, whose learning rates fall to 0 by its "
                         f"end and whose validation split is too small to choose steps by; best from {SMALL_DATA:,} "
                         "training images)", choices=("auto", "best", "last"))
    ema_decay: float = option(0.999, "decay of the exported generator's moving average", 0.0, 0.9999)
    ema_start: int = option(1000, "steps before the moving average starts (a copy until then)", 0, 10**9)
    seed: int = option(0, "seed of weights, batches and noise", 0, 2**63 - 1)
    eval_per_class: int = option(100, "samples per class for the per-epoch FID (0: off)", 0, 10_000)
    val_size: int | None = option(None, "last N training images held out for model selection, never trained on "
                                  f"(default: {VAL_SHARE:.0%}, at most {VAL_MAX})", 0, 10**7)
    limit: int | None = option(None, "train on the first N images only (smoke tests)", 1, 10**9)


@dataclass
class DataSpec:
    """Which images a run trains on (datasets.py reads them); saved in the checkpoint, so --resume reloads it."""

    source: str = option("mnist", "mnist, a folder of IDX files, an .npz, or a folder with a subfolder per class",
                         flag="data")
    image_size: int | None = option(None, "train at this size, a multiple of 4 (default: the data's own, else 28)",
                                    *IMAGE_SIZES)
    transpose: bool = option(False, "transpose every image (EMNIST's IDX files store them transposed)")
    classes: str | None = option(None, "class names in label order: 'a,b,c' or 'abc' (default: from the data)")
    test_fraction: float = option(0.1, "share held out as the test split when the data has none", 0.01, 0.5)


@dataclass
class ClassifierConfig:
    """The reference classifier's architecture (saved beside its weights)."""

    width: int = 32
    feature_dim: int = 128
    dropout: float = 0.3
    num_classes: int = 10
    image_size: int = 28


@dataclass
class ClassifierTrainConfig:
    epochs: int = 15
    batch_size: int = 128
    lr: float = 3e-3
    seed: int = 0


def cli_fields(cls) -> list:
    """The fields of ``cls`` that are ``inkdigits train`` flags."""
    return [f for f in fields(cls) if f.metadata.get("cli", False)]


def flag(name: str, cls=None) -> str:
    """The command-line flag of a config field (``source`` of DataSpec is ``--data``)."""
    if cls is not None:
        name = next(f for f in fields(cls) if f.name == name).metadata.get("flag") or name
    return "--" + name.replace("_", "-")


# A resumed run may change only its length; the value given replaces the others listed with it.
RESUMABLE = {"steps": ("epochs",), "epochs": ("steps",)}

def recipe(model: ModelConfig, cfg: TrainConfig, n_train: int, steps_per_epoch: int,
           given: set[str] | None = frozenset()) -> tuple[ModelConfig, TrainConfig, str]:  # fmt: skip
    """The run's configs with what depends on the data's size filled in, and one line saying what was chosen and
    why. Values already set (by flags, or by the checkpoint) are kept; ``given`` names the model fields set by
    flags (None for a resumed run, whose model is the checkpoint's)."""
    small = n_train < SMALL_DATA
    if cfg.epochs is not None:
        steps, length = cfg.epochs * steps_per_epoch, "--epochs"
    elif cfg.steps is not None:
        steps, length = cfg.steps, "--steps"
    else:
        steps = max(MIN_STEPS, DEFAULT_EPOCHS * steps_per_epoch)
        length = f"{DEFAULT_EPOCHS} epochs" if steps > MIN_STEPS else f"at least {MIN_STEPS:,} steps however small the set"
    eval_every = cfg.eval_every or max(MIN_EVAL_EVERY, steps_per_epoch)
    augment = ("ada" if small else "none") if cfg.augment == "auto" else cfg.augment
    decay = cfg.lr_decay_epochs
    if decay is None:  # a small set's learning rates fall to 0 over the last third: its GAN oscillates
        decay = max(1, round(steps * SMALL_DATA_DECAY / steps_per_epoch)) if small else 0
    diversity = cfg.diversity if cfg.diversity is not None else SMALL_DATA_DIVERSITY if small else 0.0
    # A small set's validation FID (100 held-out images for 1,000) picked steps by its noise: the last step, at
    # the end of the decay, read as well or better in every run measured (RESULTS section 11)
    select = ("last" if small else "best") if cfg.select == "auto" else cfg.select
    lr = SMALL_DATA_LR if small else LR
    lr_g, lr_d = cfg.lr_g or lr, cfg.lr_d or lr
    if small and given is not None:
        model = replace(model, **{k: v for k, v in SMALL_DATA_MODEL.items() if k not in given})
    size = f"a small set, fewer than {SMALL_DATA:,}" if small else f"not fewer than {SMALL_DATA:,}"
    extras = [f"learning rates {lr_g:g} (G) and {lr_d:g} (D)" if lr_g != lr_d else f"learning rate {lr_g:g}",
              f"augmentation {augment}"] + (["minibatch std in D"] if model.d_minibatch_std else [])
    if diversity:
        extras.append(f"mode-seeking term {diversity:g}")
    if cfg.warp:
        extras.append(f"{cfg.warp:.0%} of training images warped")
    if cfg.guidance:
        extras.append(f"class guidance {cfg.guidance:g}")
    if cfg.consistency:
        extras.append(f"consistency regularisation {cfg.consistency:g}")
    if decay:
        extras.append(f"learning rates decayed to 0 over the last {min(steps, decay * steps_per_epoch):,} steps")
    if select == "last":
        extras.append("the last evaluation exported")
    line = (f"recipe for {n_train:,} training images ({size}): {steps:,} steps of {cfg.batch_size} "
            f"({steps / steps_per_epoch:.1f} epochs; {length}), scored every {eval_every:,} steps; " + ", ".join(extras))
    return model, replace(cfg, steps=steps, eval_every=eval_every, augment=augment, lr_decay_epochs=decay,
                          diversity=diversity, lr_g=lr_g, lr_d=lr_d, select=select), line


def from_dict(cls, data: dict, what: str):
    """``cls(**data)``, with a clear error for unknown keys or values a dataclass refuses."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InkdigitsError(f"{what}: unknown {cls.__name__} keys {unknown}")
    try:
        config = cls(**data)
    except (TypeError, ValueError) as e:
        raise InkdigitsError(f"{what}: bad {cls.__name__} ({e})") from None
    check_fields(config, what)
    return config


def check_fields(config, what: str) -> None:
    """Every field of a config dataclass has its annotated type and lies in its option's range or choices (a
    sidecar or checkpoint can hold anything JSON can)."""
    for f in fields(config):
        value, kinds = getattr(config, f.name), str(f.type)
        if value is None and "None" in kinds:
            continue
        if "bool" in kinds:
            ok = isinstance(value, bool)
        elif "int" in kinds:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif "float" in kinds:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        else:
            ok = isinstance(value, str)
        m = f.metadata
        lo, hi, choices = m.get("lo"), m.get("hi"), m.get("choices")
        if ok and ((lo is not None and value < lo) or (hi is not None and value > hi)):
            ok = False
        if ok and m.get("positive") and not 0 < value < float("inf"):
            ok = False
        if ok and choices and value not in choices:
            ok = False
        if not ok:
            raise InkdigitsError(f"{what}: {f.name}={value!r:.40} is not a valid {kinds.replace(' | None', '')}"
                                 + (f" in {lo}..{hi}" if lo is not None or hi is not None else "")
                                 + (f" (one of {', '.join(choices)})" if choices else ""))  # fmt: skip


def resolve(overrides: dict, checkpoint: dict | None = None, where: str = "checkpoint"):
    """(ModelConfig, TrainConfig) from explicit ``overrides`` (field -> value).

    A new run starts from the defaults. A resumed run starts from the checkpoint's configs: an override that
    equals the checkpoint's value is fine, one in RESUMABLE is applied, any other is refused (never dropped).
    """
    model_keys = {f.name for f in fields(ModelConfig)}
    unknown = sorted(set(overrides) - model_keys - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise InkdigitsError(f"unknown config fields {unknown}")
    if checkpoint is None:
        if overrides.get("steps") is not None and overrides.get("epochs") is not None:
            raise InkdigitsError("give --steps or --epochs, not both")
        model = from_dict(ModelConfig, {k: v for k, v in overrides.items() if k in model_keys}, "settings")
        train = from_dict(TrainConfig, {k: v for k, v in overrides.items() if k not in model_keys}, "settings")
        return model, train
    model = from_dict(ModelConfig, checkpoint["model"], where)
    train = from_dict(TrainConfig, checkpoint["train"], where)
    for key, value in overrides.items():
        target = model if key in model_keys else train
        if value != getattr(target, key):
            check_resumable(key, value, getattr(target, key), where, type(target))
            setattr(target, key, value)
            for other in RESUMABLE[key]:
                setattr(target, other, None)
    return model, train


def resolve_data(overrides: dict, checkpoint: dict | None = None, where: str = "checkpoint") -> DataSpec:
    """The DataSpec of a new run (defaults + ``overrides``) or a resumed one (the checkpoint's; an override
    that differs from it is refused)."""
    if checkpoint is None:
        return from_dict(DataSpec, overrides, "settings")
    spec = from_dict(DataSpec, checkpoint.get("data", {}), where)
    for key, value in overrides.items():
        if value != getattr(spec, key):
            check_resumable(key, value, getattr(spec, key), where, DataSpec)
    return spec


def check_resumable(key: str, value, current, where: str, cls) -> None:
    if key not in RESUMABLE:
        raise InkdigitsError(
            f"{flag(key, cls)} {value} differs from the checkpoint's {key}={current} ({where}); "
            f"drop the flag to continue that run, or train a new one with another --out"
        )
