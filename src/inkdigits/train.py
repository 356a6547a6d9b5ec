"""Training: one loop, read top to bottom.

    inkdigits train --out runs/mine                                   # one CPU or GPU
    torchrun --nproc_per_node 4 -m inkdigits train --out runs/mine    # DDP, same command

build -> (resume) -> for each epoch, for each batch: gan.train_step -> end of epoch: score on the validation
split, write samples/plot/weights, checkpoint. The GAN's mathematics is in gan.py, the files in rundir.py,
the processes and signals in distributed.py, the defaults in config.py.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from . import distributed
from .config import resolve, resolve_data
from .errors import InkdigitsError
from .gan import ConditionalGAN
from .rundir import RunDir
from .weights import sidecar


@dataclass
class Trained:
    gan: ConditionalGAN
    history: list[dict]


def train(out: Path | str, overrides: dict | None = None, *, data: dict | None = None, resume: bool = False,
          device: str = "auto", classifier: Path | None = None, dataset=None, quiet: bool = False,
          command: str = "") -> Trained:  # fmt: skip
    """Train (or with ``resume``, continue) the run in ``out``. ``overrides``: ModelConfig/TrainConfig fields ->
    values; ``data``: DataSpec fields -> values (default MNIST); ``dataset``: an in-memory data.Dataset instead;
    ``classifier``: the reference classifier for per-epoch scores (default: the shipped MNIST one)."""
    procs = distributed.setup(device)
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if procs.is_main and not quiet else (lambda msg: None)
    run = RunDir(out)
    state = run.preflight(resume, writer=procs.is_main)
    spec = resolve_data(data or {}, state, str(run.checkpoint))
    dataset = dataset or load_dataset(spec, procs, log)
    shape = {"num_classes": len(dataset.classes), "image_size": int(dataset.x_train.shape[-1])}
    model_cfg, cfg = resolve({**(overrides or {}), **shape}, state, str(run.checkpoint))
    if cfg.batch_size % procs.world:
        raise InkdigitsError(f"--batch-size {cfg.batch_size} must divide evenly over {procs.world} processes")
    local_batch = cfg.batch_size // procs.world

    x, y, x_val, y_val = split(dataset, cfg)
    if len(x) < cfg.batch_size:
        raise InkdigitsError(f"{len(x)} training images: fewer than one batch ({cfg.batch_size}); check --limit")
    sampler = DistributedSampler(range(len(x)), num_replicas=procs.world, rank=procs.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)  # fmt: skip
    steps_per_epoch = len(sampler) // local_batch
    total_steps, decay_steps = cfg.epochs * steps_per_epoch, cfg.lr_decay_epochs * steps_per_epoch
    gan = ConditionalGAN(model_cfg, cfg, procs.device, noise_seed=cfg.seed * 1000 + procs.rank)
    epoch, step_in_epoch, history, partial, commands = 0, 0, [], fresh_partial(), [command]
    if state is not None:
        gan.load_state_dict(state["gan"], noise=procs.world == 1)  # other ranks' streams reseed per epoch
        epoch, step_in_epoch, history, partial = state["epoch"], state["step_in_epoch"], state["history"], state["partial"]
        commands = [*state.get("commands", []), command]
        log(f"resumed {run.checkpoint}: epoch {epoch + 1}, step {step_in_epoch} of the epoch")
    gan.parallelize(procs.wrap, procs.average)
    if gan.autocast:
        torch.backends.cudnn.benchmark = True
    scorer = make_scorer(procs.is_main, cfg, model_cfg, spec, classifier, x_val, y_val, log)
    k = model_cfg.num_classes
    grid_z = torch.randn(10, model_cfg.latent_dim, generator=torch.Generator().manual_seed(12345)).repeat(k, 1)
    grid_y = torch.arange(k).repeat_interleave(10)

    def checkpoint() -> dict:
        return {"model": asdict(model_cfg), "train": asdict(cfg), "data": asdict(spec), "gan": gan.state_dict(), "epoch": epoch,
                "step_in_epoch": step_in_epoch, "history": history, "partial": dict(partial),
                "commands": commands}  # fmt: skip

    log(f"training {cfg.epochs} epochs x {steps_per_epoch} steps of {cfg.batch_size} images "
        f"({len(x)} train, {len(x_val)} held out) on {procs.device} x{procs.world} -> {run.path}")  # fmt: skip
    with distributed.StopSignal() as stop:
        while epoch < cfg.epochs:
            sampler.set_epoch(epoch)
            order = torch.tensor(list(iter(sampler)), dtype=torch.long)
            if procs.world > 1 and step_in_epoch == 0:
                gan.noise.manual_seed(cfg.seed * 1000 + procs.rank + 7919 * epoch)
            bar = tqdm(total=steps_per_epoch, initial=step_in_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       disable=quiet or not procs.is_main or not sys.stderr.isatty(), leave=False)  # fmt: skip
            sums, t0 = torch.zeros(2, dtype=torch.float64), time.perf_counter()
            while step_in_epoch < steps_per_epoch:
                idx = order[step_in_epoch * local_batch : (step_in_epoch + 1) * local_batch]
                if decay_steps:
                    gan.set_lr_scale(min(1.0, (total_steps - gan.step) / decay_steps))
                losses = gan.train_step(x[idx], y[idx])
                sums += torch.stack([losses["loss_d"], losses["loss_g"]]).double().cpu()
                step_in_epoch += 1
                if (step_in_epoch % 20 == 0 or step_in_epoch == steps_per_epoch) and not torch.isfinite(sums).all():
                    raise InkdigitsError(f"loss became NaN/inf at epoch {epoch + 1}, step {gan.step}; the last good "
                                         f"checkpoint is kept in {run.checkpoint} (try a lower --lr)")  # fmt: skip
                bar.update(1)
                if procs.any(stop.signum is not None):
                    add_partial(partial, sums, time.perf_counter() - t0, step_in_epoch)
                    if procs.is_main:
                        run.save_checkpoint(checkpoint())
                        log(f"stopped by signal: saved {run.checkpoint}; continue with --resume")
                    raise SystemExit(stop.exit_code)
            bar.close()
            add_partial(partial, sums, time.perf_counter() - t0, step_in_epoch)
            record = epoch_record(epoch + 1, gan.step, partial, cfg.batch_size, history)
            epoch, step_in_epoch, partial = epoch + 1, 0, fresh_partial()
            if procs.is_main:
                record.update(scorer(gan))
                best = record["fid"] is None or record["fid"] <= min((r["fid"] for r in history if r["fid"] is not None),
                                                                      default=math.inf)  # fmt: skip
                history.append(record)
                run.save_samples(gan.sample(grid_z, grid_y), record["epoch"], ncols=10)
                run.plot(history)
                info = sidecar("Generator", asdict(model_cfg), train=asdict(cfg), data=asdict(spec),
                               classes=dataset.classes, command=commands[0],
                               selected_by=record["selected_by"], **{key: record[key] for key in EXPORTED})  # fmt: skip
                run.export(gan.G_ema, info, best)
                run.save_checkpoint(checkpoint())
                log(summary(record, cfg.epochs))
            else:
                history.append(record)
    log(f"done: {run.path / 'generator.safetensors'}")
    return Trained(gan, history)


EXPORTED = ("epoch", "step", "wall_seconds", "fid", "class_acc")


def load_dataset(spec, procs, log):
    from . import datasets

    if spec.source != "mnist":
        return datasets.load(spec, log)
    if not procs.is_main:  # rank 0 fetches MNIST if needed, the others wait and then read the cache
        procs.barrier()
    dataset = datasets.load(spec, log, fetch_if_needed=procs.is_main)
    if procs.is_main:
        procs.barrier()
    return dataset


def split(dataset, cfg):
    """(x_train, y_train, x_val, y_val): the last ``val_size`` training images (default 10%, at most 5000)
    are held out for model selection and never trained on; ``limit`` then takes the first N of the rest."""
    n = len(dataset.x_train)
    val_size = min(5000, n // 10) if cfg.val_size is None else cfg.val_size
    if val_size >= n:
        raise InkdigitsError(f"--val-size {val_size} leaves none of the {n} training images to train on")
    cut = n - val_size
    keep = min(cfg.limit or cut, cut)
    return dataset.x_train[:keep], dataset.y_train[:keep], dataset.x_train[cut:], dataset.y_train[cut:]


def make_scorer(is_main: bool, cfg, model_cfg, spec, classifier, x_val, y_val, log):
    """Per-epoch class accuracy and FID on the validation split; says loudly when that is off."""
    off = {"fid": None, "class_acc": None}
    if not is_main:
        return lambda gan: off
    if cfg.eval_per_class == 0 or len(x_val) == 0:
        reason = "--eval-per-class 0" if cfg.eval_per_class == 0 else "--val-size 0"
        log(f"per-epoch scores are off ({reason}): generator.safetensors will be the last epoch's")
        return lambda gan: {**off, "selected_by": f"last epoch ({reason})"}
    from .classifier import load_classifier
    from .evaluate import Evaluator
    from .resources import default_classifier

    path = Path(classifier) if classifier else default_classifier()
    note = None
    if not path.is_file():
        note = f"no reference classifier at {path}; give one with --classifier PATH"
    elif classifier is None and spec.source != "mnist":
        note = (f"the shipped classifier knows only MNIST; train one for this data with `inkdigits evaluate "
                f"train-classifier --data {spec.source} --out CLASSIFIER.safetensors` and pass --classifier")
    if note:
        log(f"WARNING: {note}. Per-epoch FID is off: generator.safetensors will be the last epoch's")
        return lambda gan: {**off, "selected_by": f"last epoch ({note})"}
    model = load_classifier(path)
    if (model.config.num_classes, model.config.image_size) != (model_cfg.num_classes, model_cfg.image_size):
        raise InkdigitsError(f"{path}: a classifier for {model.config.num_classes} classes at {model.config.image_size} px, "
                             f"but the data has {model_cfg.num_classes} classes at {model_cfg.image_size} px")  # fmt: skip
    evaluator = Evaluator(model, x_val.numpy(), y_val.numpy(), max_per_class_diversity=200)
    k, n = evaluator.num_classes, cfg.eval_per_class

    def score(gan) -> dict:
        z = torch.randn(n * k, gan.model_config.latent_dim, generator=torch.Generator().manual_seed(777))
        y = torch.arange(k).repeat_interleave(n)
        m = evaluator.metrics(gan.sample(z, y), y.numpy())
        return {"fid": m["fid"], "class_acc": m["class_acc"], "selected_by": "best validation FID"}

    return score


def fresh_partial() -> dict:
    return {"loss_d": 0.0, "loss_g": 0.0, "seconds": 0.0, "steps": 0}


def add_partial(partial: dict, sums: torch.Tensor, seconds: float, steps: int) -> None:
    """Add this stretch of the epoch to the running totals (an epoch may span a resume)."""
    partial["loss_d"] += float(sums[0])
    partial["loss_g"] += float(sums[1])
    partial["seconds"] += seconds
    partial["steps"] = steps


def epoch_record(epoch: int, step: int, partial: dict, batch_size: int, history: list[dict]) -> dict:
    steps, seconds = max(1, partial["steps"]), partial["seconds"]
    return {"epoch": epoch, "step": step, "loss_d": partial["loss_d"] / steps, "loss_g": partial["loss_g"] / steps,
            "images_per_s": steps * batch_size / max(seconds, 1e-9), "seconds": seconds,
            "wall_seconds": (history[-1]["wall_seconds"] if history else 0.0) + seconds}  # fmt: skip


def summary(r: dict, epochs: int) -> str:
    scores = f"  val class_acc {r['class_acc']:.2%}  val fid {r['fid']:.3f}" if r["fid"] is not None else ""
    return (f"epoch {r['epoch']}/{epochs}: loss_d {r['loss_d']:.3f} loss_g {r['loss_g']:.3f}  "
            f"{r['images_per_s']:.0f} img/s  {r['seconds']:.0f} s{scores}")  # fmt: skip
