"""Training: one loop, read top to bottom.

    inkdigits train --out runs/mine                                   # one CPU or GPU
    torchrun --nproc_per_node 4 -m inkdigits train --out runs/mine    # DDP, same command

build -> the recipe for the data's size -> (resume) -> for each step: gan.train_step -> every eval_every steps:
score on the validation split, write samples/plot/weights, checkpoint. The GAN's mathematics is in gan.py
(augmentation in augment.py), the judge of quality in judge.py, the files in rundir.py, the processes and signals
in distributed.py, the defaults and the recipe in config.py.
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
from .config import VAL_MAX, VAL_SHARE, recipe, resolve, resolve_data
from .errors import InkdigitsError
from .gan import ConditionalGAN
from .judge import check_given, check_guidance, make_judge, reference_classifier
from .rundir import RunDir
from .weights import sidecar


@dataclass
class Trained:
    gan: ConditionalGAN
    history: list[dict]


def train(out: Path | str, overrides: dict | None = None, *, data: dict | None = None, resume: bool = False,
          device: str = "auto", classifier: Path | str | None = None, dataset=None, quiet: bool = False,
          command: str = "", minutes: float | None = None) -> Trained:  # fmt: skip
    """Train (or with ``resume``, continue) the run in ``out``. ``overrides``: ModelConfig/TrainConfig fields ->
    values; ``data``: DataSpec fields -> values (default MNIST); ``dataset``: an in-memory datasets.Dataset instead;
    ``classifier``: the reference classifier for the validation scores (default: the shipped MNIST one, or for
    other data one trained on it first; "none": no scores); ``minutes``: stop after about this long, exporting
    the best generator so far (``resume`` goes on)."""
    started = time.monotonic()
    if minutes is not None and not 0 < minutes < math.inf:
        raise InkdigitsError(f"--minutes {minutes}: must be a positive number of minutes")
    check_given(classifier)
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

    x, y, x_val, y_val = split(dataset, cfg, shuffle=spec.source != "mnist")
    if len(x) < cfg.batch_size:
        raise InkdigitsError(f"{len(x)} training images: fewer than one batch ({cfg.batch_size}); check --limit")
    sampler = DistributedSampler(range(len(x)), num_replicas=procs.world, rank=procs.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)  # fmt: skip
    steps_per_epoch = len(sampler) // local_batch
    model_cfg, cfg, why = recipe(model_cfg, cfg, len(x), steps_per_epoch, None if state else set(overrides or {}))
    log(why)
    check_guidance(cfg, classifier)
    if procs.is_main:
        run.create()
    with run.writing():
        judge, reference = ((lambda gan: {"fid": None, "class_acc": None}), None)
        if procs.is_main:
            judge, reference = make_judge(run.path, cfg, model_cfg, spec, dataset.classes, classifier, x, y, x_val,
                                          y_val, log)  # fmt: skip
    if cfg.guidance and procs.world > 1:  # the other ranks read the classifier rank 0 has trained or found
        procs.barrier()
        if not procs.is_main:
            reference = reference_classifier(run.path, classifier, spec, dataset.classes, model_cfg, x, y, x_val,
                                             y_val, log)  # fmt: skip
    total_steps, decay_steps = cfg.steps, cfg.lr_decay_epochs * steps_per_epoch
    gan = ConditionalGAN(model_cfg, cfg, procs.device, rank=procs.rank)
    if cfg.guidance:
        gan.set_guide(reference)
    history, partial, commands = [], fresh_partial(), [command]
    if state is not None:
        gan.load_state_dict(state["gan"], noise=procs.world == 1)  # other ranks' streams reseed per epoch
        history, partial = state["history"], state["partial"]
        commands = [*state.get("commands", []), command]
        log(f"resumed {run.checkpoint} at step {gan.step:,}")
    gan.parallelize(procs.wrap, procs.average)
    if gan.autocast:
        torch.backends.cudnn.benchmark = True
    k = model_cfg.num_classes
    grid_z = torch.randn(10, model_cfg.latent_dim, generator=torch.Generator().manual_seed(12345)).repeat(k, 1)
    grid_y = torch.arange(k).repeat_interleave(10)

    def checkpoint() -> dict:
        epoch, step_in_epoch = divmod(gan.step, steps_per_epoch)  # where in the data the run is, for readers
        return {"model": asdict(model_cfg), "train": asdict(cfg), "data": asdict(spec), "gan": gan.state_dict(),
                "epoch": epoch, "step_in_epoch": step_in_epoch, "history": history, "partial": dict(partial),
                "commands": commands}  # fmt: skip

    log(f"training to step {total_steps:,} ({steps_per_epoch} steps of {cfg.batch_size} images an epoch; {len(x):,} "
        f"train, {len(x_val):,} held out) on {procs.device} x{procs.world} -> {run.path}")  # fmt: skip
    deadline = started + minutes * 60 if minutes else math.inf
    eval_seconds, order_epoch = 0.0, None
    bar = tqdm(total=total_steps, initial=gan.step, desc="steps", leave=False,
               disable=quiet or not procs.is_main or not sys.stderr.isatty())  # fmt: skip
    with distributed.StopSignal() as stop:
        sums, t0, stretch = torch.zeros(2, dtype=torch.float64), time.perf_counter(), 0
        pace = (t0, gan.step)  # this process's start: the time left is judged from its own steps and scoring
        while gan.step < total_steps:
            epoch, position = divmod(gan.step, steps_per_epoch)
            if epoch != order_epoch:
                sampler.set_epoch(epoch)
                order, order_epoch = torch.tensor(list(iter(sampler)), dtype=torch.long), epoch
                if procs.world > 1 and position == 0:
                    gan.reseed_noise(epoch)
            idx = order[position * local_batch : (position + 1) * local_batch]
            if decay_steps:
                gan.set_lr_scale(min(1.0, (total_steps - gan.step) / decay_steps))
            losses = gan.train_step(x[idx], y[idx])
            sums += torch.stack([losses["loss_d"], losses["loss_g"]]).double().cpu()
            stretch += 1
            bar.update(1)
            if procs.any(stop.signum is not None):
                add_partial(partial, sums, time.perf_counter() - t0, stretch)
                if procs.is_main:
                    with run.writing():
                        run.save_checkpoint(checkpoint())
                    log(f"stopped by signal: saved {run.checkpoint}; continue with --resume")
                raise SystemExit(stop.exit_code)
            # Stop in time to score, export and checkpoint before the deadline.
            time_up = minutes is not None and procs.any(time.monotonic() + eval_seconds >= deadline)
            evaluate = gan.step % cfg.eval_every == 0 or gan.step >= total_steps or time_up
            if (stretch % 20 == 0 or evaluate) and not torch.isfinite(sums).all():  # a host sync, so not every step
                raise InkdigitsError(f"loss became NaN/inf at step {gan.step}; the last good checkpoint is kept in "
                                     f"{run.checkpoint} (try a lower --lr)")  # fmt: skip
            if not evaluate:
                continue
            add_partial(partial, sums, time.perf_counter() - t0, stretch)
            record = eval_record(gan, steps_per_epoch, partial, cfg.batch_size, history)
            t_eval = time.perf_counter()
            if procs.is_main:
                with run.writing():  # a full disk: one line, the last checkpoint kept
                    record.update(judge(gan))
                    scored = [r["fid"] for r in history if r["fid"] is not None]
                    best = (record["fid"] is None or cfg.select == "last"
                            or record["fid"] <= min(scored, default=math.inf))
                    history.append(record)
                    run.save_samples(gan.sample(grid_z, grid_y), gan.step, ncols=10)
                    run.plot(history)
                    info = sidecar("Generator", asdict(model_cfg), train=asdict(cfg), data=asdict(spec),
                                   classes=dataset.classes, command=commands[0],
                                   selected_by=record["selected_by"], **{key: record[key] for key in EXPORTED})  # fmt: skip
                    run.export(gan.G_ema, info, best)
                    run.save_checkpoint(checkpoint())
                    log(summary(record, total_steps, left_seconds(pace, gan.step, total_steps)))
            else:
                history.append(record)
            eval_seconds = time.perf_counter() - t_eval
            sums, t0, stretch, partial = torch.zeros(2, dtype=torch.float64), time.perf_counter(), 0, fresh_partial()
            if time_up and gan.step < total_steps:
                log(f"--minutes {minutes:g}: stopped at step {gan.step:,} of {total_steps:,}; "
                    f"continue with --resume (and without --minutes, or with a new one)")  # fmt: skip
                break
    bar.close()
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


def split(dataset, cfg, shuffle: bool = False):
    """(x_train, y_train, x_val, y_val): the last ``val_size`` training images (default VAL_SHARE, at most VAL_MAX)
    are held out for model selection and never trained on; ``limit`` then takes the first N of the rest.
    ``shuffle`` (for data other than MNIST, whose order is already random) first orders them by a fixed seed:
    a set saved class by class would otherwise hold out its last classes only."""
    x, y = dataset.x_train, dataset.y_train
    n = len(x)
    if shuffle:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
        x, y = x[order], y[order]
    val_size = min(VAL_MAX, int(n * VAL_SHARE)) if cfg.val_size is None else cfg.val_size
    if val_size >= n:
        raise InkdigitsError(f"--val-size {val_size} leaves none of the {n} training images to train on")
    cut = n - val_size
    keep = min(cfg.limit or cut, cut)
    return x[:keep], y[:keep], x[cut:], y[cut:]


def fresh_partial() -> dict:
    return {"loss_d": 0.0, "loss_g": 0.0, "seconds": 0.0, "steps": 0}


def add_partial(partial: dict, sums: torch.Tensor, seconds: float, steps: int) -> None:
    """Add a stretch of steps to the totals since the last evaluation (which may span a resume)."""
    partial["loss_d"] += float(sums[0])
    partial["loss_g"] += float(sums[1])
    partial["seconds"] += seconds
    partial["steps"] += steps


def eval_record(gan, steps_per_epoch: int, partial: dict, batch_size: int, history: list[dict]) -> dict:
    steps, seconds = max(1, partial["steps"]), partial["seconds"]
    rt = gan.ada.last_rt
    return {"epoch": round(gan.step / steps_per_epoch, 2), "step": gan.step, "loss_d": partial["loss_d"] / steps,
            "loss_g": partial["loss_g"] / steps, "images_per_s": steps * batch_size / max(seconds, 1e-9),
            "seconds": seconds, "wall_seconds": (history[-1]["wall_seconds"] if history else 0.0) + seconds,
            "augment_p": gan.ada.p, "d_real_sign": None if math.isnan(rt) else rt}  # fmt: skip


def left_seconds(pace: tuple[float, int], step: int, total_steps: int) -> float:
    """Seconds until ``total_steps`` at the pace since ``pace`` = (perf_counter, step), scoring included."""
    started, first_step = pace
    return (time.perf_counter() - started) / max(1, step - first_step) * (total_steps - step)


def summary(r: dict, total_steps: int, left: float) -> str:
    scores = f"  val class_acc {r['class_acc']:.2%}  val fid {r['fid']:.3f}" if r["fid"] is not None else ""
    eta = f", about {math.ceil(left / 60)} min left" if r["step"] < total_steps else ""
    return (f"step {r['step']:,}/{total_steps:,} (epoch {r['epoch']:g}): loss_d {r['loss_d']:.3f} "
            f"loss_g {r['loss_g']:.3f}  augment p {r['augment_p']:.2f}  {r['images_per_s']:.0f} img/s  "
            f"{r['wall_seconds'] / 60:.1f} min{eta}{scores}")  # fmt: skip
