"""Training the conditional GAN: one loop, readable top to bottom.

    inkdigits train --out runs/mine                                   # one CPU or GPU
    torchrun --nproc_per_node 4 -m inkdigits train --out runs/mine    # DDP, same command

Each epoch writes (rank 0 only): metrics.jsonl, samples/epoch_NNN.png, loss.png, checkpoint.pt (atomic),
generator_last.safetensors and generator.safetensors (the best-FID EMA generator; the last one when no
reference classifier is available). ``--resume`` continues exactly where checkpoint.pt stopped, even
mid-epoch. SIGINT/SIGTERM save and exit with 130/143.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from . import images as im
from .data import load_mnist
from .errors import InkdigitsError
from .fileio import atomic_replace, atomic_write_text
from .models import NUM_CLASSES, Discriminator, GANConfig, Generator, to_uint8, to_unit
from .weights import save_weights

CHECKPOINT = "checkpoint.pt"
MIN_FREE_BYTES = 200 * 2**20  # a checkpoint is a few MB; refuse to start with less than this free
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
# Don't re-broadcast buffers at every forward (newer torch renamed the switch; buffers still sync at init,
# which is harmless here: every rank builds identical models from the same seed).
_DDP_ARGS = inspect.signature(DDP.__init__).parameters
NO_BUFFER_SYNC = {"forward_sync_buffers": False} if "forward_sync_buffers" in _DDP_ARGS else {"broadcast_buffers": False}


class TrainingStopped(Exception):
    def __init__(self, signum: int):
        self.exit_code = EXIT_SIGNAL.get(signum, 1)


# --------------------------------------------------------------------------- distributed helpers


def setup_distributed(device_arg: str):
    """Returns (rank, world_size, device). Under torchrun, joins the group (NCCL on CUDA, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_arg == "auto":
        device_arg = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if device_arg == "cuda" and not torch.cuda.is_available():
        raise InkdigitsError("--device cuda: no CUDA device is available")
    if device_arg == "mps" and not torch.backends.mps.is_available():
        raise InkdigitsError("--device mps: MPS is not available")
    device = torch.device(f"cuda:{local_rank}" if device_arg == "cuda" else device_arg)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, (dist.get_world_size() if dist.is_initialized() else 1), device


def unwrap(model):
    """The bare module, so saved weights never carry DDP's 'module.' prefix."""
    return model.module if isinstance(model, DDP) else model


# --------------------------------------------------------------------------- the trainer


class Trainer:
    """``Trainer(config, out).train()``: everything about one run folder."""

    def __init__(self, config: GANConfig, out: Path, *, device: str = "auto", limit: int | None = None,
                 resume: bool = False, classifier: Path | None = None, quiet: bool = False,
                 resume_epochs: int | None = None, mnist=None):  # fmt: skip
        self.config, self.out, self.limit, self.resume = config, Path(out), limit, resume
        self.resume_epochs = resume_epochs  # --epochs given with --resume: extend (or shorten) the run
        self.mnist = mnist  # an in-memory data.MNIST instead of the cache (benchmarks)
        self.classifier_path, self.quiet = classifier, quiet
        self.rank, self.world, self.device = setup_distributed(device)
        self.is_main = self.rank == 0
        self.stop_signal: int | None = None

    def log(self, msg: str) -> None:
        if self.is_main and not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    # ----------------------------------------------------------------- preflight

    def preflight(self) -> dict | None:
        """Fail before training, not after an hour: unusable --out, no disk space, run clash."""
        ckpt = self.out / CHECKPOINT
        if self.out.exists() and not self.out.is_dir():
            raise InkdigitsError(f"{self.out}: --out must be a folder, and this is a file")
        if self.resume and not ckpt.is_file():
            raise InkdigitsError(f"{ckpt}: nothing to resume (no checkpoint in {self.out})")
        if not self.resume and ckpt.exists():
            raise InkdigitsError(f"{self.out}: already holds a run; add --resume to continue it or pick another --out")
        if self.is_main:
            try:
                (self.out / "samples").mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=self.out, prefix=".write-test-"):
                    pass
            except OSError as e:
                raise InkdigitsError(f"{self.out}: cannot write there ({e.strerror or e})") from None
            free = shutil.disk_usage(self.out).free
            if free < MIN_FREE_BYTES:
                raise InkdigitsError(f"{self.out}: only {free / 2**20:.0f} MB free, need {MIN_FREE_BYTES // 2**20} MB")
        if not self.resume:
            return None
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            state["config"] = GANConfig.from_dict(state["config"])
        except Exception as e:
            raise InkdigitsError(f"{ckpt}: cannot read checkpoint ({type(e).__name__}: {e})") from None
        return state

    # ----------------------------------------------------------------- setup

    def setup(self) -> None:
        state = self.preflight()
        if state is not None:
            self.config = state["config"]  # the checkpoint says how it was trained...
            if self.resume_epochs:
                self.config.epochs = self.resume_epochs  # ...except how long: --epochs may extend a run
        cfg = self.config
        if cfg.batch_size % self.world:
            raise InkdigitsError(f"--batch-size {cfg.batch_size} must divide evenly over {self.world} processes")
        self.local_batch = cfg.batch_size // self.world

        # Data: rank 0 fetches if needed, the others wait and then read the cache.
        mnist = self.mnist
        if mnist is None:
            if self.rank != 0:
                dist.barrier()
            mnist = load_mnist(fetch_if_needed=self.is_main, log=self.log)
            if self.rank == 0 and self.world > 1:
                dist.barrier()
        n = min(self.limit or len(mnist.x_train), len(mnist.x_train))
        self.x, self.y, self.mnist = mnist.x_train[:n], mnist.y_train[:n], mnist
        if n < self.local_batch * self.world:
            raise InkdigitsError(f"--limit {n}: fewer images than one batch ({cfg.batch_size})")
        self.sampler = DistributedSampler(range(n), num_replicas=self.world, rank=self.rank, shuffle=True,
                                          seed=cfg.seed, drop_last=True)  # fmt: skip
        self.steps_per_epoch = len(self.sampler) // self.local_batch

        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.G = Generator(**cfg.generator_kwargs()).to(self.device)
        self.D = Discriminator(cfg.d_width).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=betas)
        self.noise = torch.Generator().manual_seed(cfg.seed * 1000 + self.rank)  # per-rank noise stream
        self.epoch, self.step_in_epoch, self.step = 0, 0, 0
        self.history: list[dict] = []
        self.partial = {"loss_d": 0.0, "loss_g": 0.0, "seconds": 0.0, "steps": 0}
        self.best_fid = math.inf
        if state is not None:
            self.load_state(state)
        if self.world > 1:
            # No BatchNorm in D; G's BN buffers stay per-rank (broadcasting them in-place breaks autograd).
            self.G_train = DDP(self.G, **NO_BUFFER_SYNC)
            self.D_train = DDP(self.D, **NO_BUFFER_SYNC)
        else:
            self.G_train, self.D_train = self.G, self.D
        self.autocast = self.device.type == "cuda"
        if self.autocast:
            torch.backends.cudnn.benchmark = True

        # What rank 0 draws every epoch: fixed styles (columns) x digits (rows), and the metric samples.
        fixed = torch.Generator().manual_seed(12345)
        self.grid_z = torch.randn(10, cfg.latent_dim, generator=fixed).repeat(NUM_CLASSES, 1)
        self.grid_y = torch.arange(NUM_CLASSES).repeat_interleave(10)
        self.evaluator = self.make_evaluator() if self.is_main else None

    def make_evaluator(self):
        if self.config.eval_per_class <= 0:
            return None
        from . import evaluate as ev

        path = self.classifier_path or ev.DEFAULT_CLASSIFIER
        if not Path(path).is_file():
            self.log(f"no reference classifier at {path}: per-epoch class_acc/FID are off")
            return None
        clf = ev.load_classifier(path)
        return ev.Evaluator(clf, self.mnist.x_test.numpy(), self.mnist.y_test.numpy(), max_per_class_diversity=200)

    # ----------------------------------------------------------------- state

    def state_dict(self) -> dict:
        return {
            "config": asdict(self.config),
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "step": self.step,
            "partial": dict(self.partial), "history": list(self.history), "best_fid": self.best_fid,
            "rng_noise": self.noise.get_state(), "rng_torch": torch.get_rng_state(),
        }  # fmt: skip

    def load_state(self, s: dict) -> None:
        self.G.load_state_dict(s["G"])
        self.D.load_state_dict(s["D"])
        self.G_ema.load_state_dict(s["G_ema"])
        self.opt_g.load_state_dict(s["opt_g"])
        self.opt_d.load_state_dict(s["opt_d"])
        self.epoch, self.step_in_epoch, self.step = s["epoch"], s["step_in_epoch"], s["step"]
        self.partial, self.history, self.best_fid = dict(s["partial"]), list(s["history"]), s["best_fid"]
        if self.world == 1:  # noise streams are per rank; a resumed DDP run reseeds them per epoch instead
            self.noise.set_state(s["rng_noise"])
        torch.set_rng_state(s["rng_torch"])
        self.log(f"resumed {self.out / CHECKPOINT}: epoch {self.epoch + 1}, step {self.step_in_epoch} of the epoch")

    def save_checkpoint(self) -> None:
        state = self.state_dict()
        atomic_replace(self.out / CHECKPOINT, lambda tmp: torch.save(state, tmp))
        self.write_metrics_log()

    def write_metrics_log(self) -> None:
        # Rebuilt from the checkpoint's history, so a kill between the two writes cannot duplicate an epoch.
        atomic_write_text(self.out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in self.history))

    # ----------------------------------------------------------------- one step

    def gan_step(self, x_u8: torch.Tensor, y_real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, n = self.config, len(x_u8)
        x = to_unit(x_u8).to(self.device, non_blocking=True)
        y_real = y_real.to(self.device, non_blocking=True)
        z = torch.randn(n, cfg.latent_dim, generator=self.noise).to(self.device)
        y_fake = torch.randint(0, NUM_CLASSES, (n,), generator=self.noise).to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            fake = self.G_train(z, y_fake)
            # Real and fake share one D forward: half the kernel launches, one set of SN power iterations.
            d_out = self.D_train(torch.cat([x, fake.detach().to(x.dtype)]), torch.cat([y_real, y_fake])).float()
        d_real, d_fake = d_out[:n], d_out[n:]
        if cfg.loss == "hinge":
            loss_d = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        else:
            loss_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            g_out = self.D_train(fake, y_fake).float()
        loss_g = -g_out.mean() if cfg.loss == "hinge" else F.softplus(-g_out).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.update_ema()
        return loss_d.detach(), loss_g.detach()

    @torch.no_grad()
    def update_ema(self) -> None:
        decay = self.config.ema_decay if self.step >= self.config.ema_start else 0.0
        ema_p, p = list(self.G_ema.parameters()), list(self.G.parameters())
        torch._foreach_lerp_(ema_p, p, 1.0 - decay)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
            b_ema.copy_(b)

    # ----------------------------------------------------------------- the loop

    def train(self) -> list[dict]:
        self.setup()
        cfg = self.config
        self.log(f"training {cfg.epochs} epochs x {self.steps_per_epoch} steps of {cfg.batch_size} images "
                 f"on {self.device} x{self.world} -> {self.out}")  # fmt: skip
        old_handlers = self.install_signal_handlers()
        try:
            while self.epoch < cfg.epochs:
                self.run_epoch()
        except TrainingStopped as stop:
            if self.is_main:
                self.save_checkpoint()
                self.log(f"stopped by signal: saved {self.out / CHECKPOINT}; continue with --resume")
            raise SystemExit(stop.exit_code) from None
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
        self.log(f"done: {self.out / 'generator.safetensors'}")
        return self.history

    def install_signal_handlers(self) -> dict:
        def handler(signum, frame):
            self.stop_signal = signum

        old = {}
        for sig in EXIT_SIGNAL:
            try:
                old[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread (e.g. inside a test runner thread)
                pass
        return old

    def should_stop(self) -> bool:
        flag = self.stop_signal is not None
        if self.world > 1:  # all ranks must stop at the same step, or the others hang in all-reduce
            t = torch.tensor([float(flag)], device=self.device if self.device.type == "cuda" else "cpu")
            dist.all_reduce(t)
            flag = t.item() > 0
        return flag

    def run_epoch(self) -> None:
        cfg = self.config
        self.sampler.set_epoch(self.epoch)
        order = torch.tensor(list(iter(self.sampler)), dtype=torch.long)
        if self.world > 1 and self.step_in_epoch == 0:
            self.noise.manual_seed(cfg.seed * 1000 + self.rank + 7919 * self.epoch)
        bar = tqdm(total=self.steps_per_epoch, initial=self.step_in_epoch, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                   disable=not (self.is_main and not self.quiet and sys.stderr.isatty()),
                   mininterval=0.5, leave=False, dynamic_ncols=True)  # fmt: skip
        sums = torch.zeros(2, dtype=torch.float64)
        t0 = time.perf_counter()
        while self.step_in_epoch < self.steps_per_epoch:
            idx = order[self.step_in_epoch * self.local_batch : (self.step_in_epoch + 1) * self.local_batch]
            loss_d, loss_g = self.gan_step(self.x[idx], self.y[idx])
            sums += torch.stack([loss_d, loss_g]).double().cpu()
            self.step_in_epoch += 1
            self.step += 1
            if self.step_in_epoch % 20 == 0 or self.step_in_epoch == self.steps_per_epoch:
                if not torch.isfinite(sums).all():
                    raise InkdigitsError(
                        f"loss became NaN/inf at epoch {self.epoch + 1}, step {self.step}; "
                        f"the last good checkpoint is kept in {self.out / CHECKPOINT} (try a lower --lr)"
                    )
                bar.set_postfix(loss_d=f"{loss_d.item():.3f}", loss_g=f"{loss_g.item():.3f}", refresh=False)
            bar.update(1)
            if self.should_stop():
                self.fold_partial(sums, time.perf_counter() - t0)
                bar.close()
                raise TrainingStopped(self.stop_signal or signal.SIGTERM)
        bar.close()
        self.fold_partial(sums, time.perf_counter() - t0)
        self.end_epoch()

    def fold_partial(self, sums: torch.Tensor, seconds: float) -> None:
        """Add this stretch of the epoch to the running totals (an epoch may span a resume)."""
        p = self.partial
        p["loss_d"] += float(sums[0])
        p["loss_g"] += float(sums[1])
        p["seconds"] += seconds
        p["steps"] = self.step_in_epoch

    def end_epoch(self) -> None:
        p, steps = self.partial, max(1, self.partial["steps"])
        wall = (self.history[-1]["wall_seconds"] if self.history else 0.0) + p["seconds"]
        record = {
            "epoch": self.epoch + 1, "step": self.step,
            "loss_d": p["loss_d"] / steps, "loss_g": p["loss_g"] / steps,
            "images_per_s": steps * self.config.batch_size / max(p["seconds"], 1e-9),
            "seconds": p["seconds"], "wall_seconds": wall,
        }  # fmt: skip
        self.epoch += 1
        self.step_in_epoch = 0
        self.partial = {"loss_d": 0.0, "loss_g": 0.0, "seconds": 0.0, "steps": 0}
        if self.is_main:
            record.update(self.evaluate_epoch())
            self.history.append(record)
            self.write_artifacts(record)
            self.save_checkpoint()
            extra = f"  class_acc {record['class_acc']:.2%}  fid {record['fid']:.3f}" if "fid" in record else ""
            self.log(f"epoch {record['epoch']}/{self.config.epochs}: loss_d {record['loss_d']:.3f} "
                     f"loss_g {record['loss_g']:.3f}  {record['images_per_s']:.0f} img/s  "
                     f"{record['seconds']:.0f} s{extra}")  # fmt: skip
        else:
            self.history.append(record)

    @torch.no_grad()
    def evaluate_epoch(self) -> dict:
        if self.evaluator is None:
            return {}
        n = self.config.eval_per_class
        gen = torch.Generator().manual_seed(777)
        z = torch.randn(n * NUM_CLASSES, self.config.latent_dim, generator=gen)
        y = torch.arange(NUM_CLASSES).repeat_interleave(n)
        imgs = self.sample_ema(z, y)
        m = self.evaluator.metrics(imgs, y.numpy())
        return {"class_acc": m["class_acc"], "fid": m["fid"], "diversity": m["diversity"]}

    @torch.no_grad()
    def sample_ema(self, z: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        return to_uint8(self.G_ema(z.to(self.device), y.to(self.device)).float()).cpu().numpy()

    def write_artifacts(self, record: dict) -> None:
        grid = im.grid(self.sample_ema(self.grid_z, self.grid_y), ncols=10)
        im.save_png(grid, self.out / "samples" / f"epoch_{record['epoch']:03d}.png", scale=2)
        plot_history(self.history, self.out / "loss.png")
        info = {"architecture": "Generator", "config": asdict(self.config), "epoch": record["epoch"],
                "step": record["step"], "wall_seconds": record["wall_seconds"]}  # fmt: skip
        if "fid" in record:
            info.update(fid=record["fid"], class_acc=record["class_acc"])
        save_weights(self.G_ema, self.out / "generator_last.safetensors", info)
        # The exported artefact is the best EMA generator by FID (the last one when FID is off).
        if "fid" not in record or record["fid"] <= self.best_fid:
            self.best_fid = record.get("fid", self.best_fid)
            save_weights(self.G_ema, self.out / "generator.safetensors", info)


def plot_history(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    has_fid = any("fid" in r for r in history)
    fig, axes = plt.subplots(1, 2 if has_fid else 1, figsize=(11 if has_fid else 6, 4), squeeze=False)
    ax = axes[0][0]
    ax.plot(epochs, [r["loss_d"] for r in history], label="discriminator")
    ax.plot(epochs, [r["loss_g"] for r in history], label="generator")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("GAN losses")
    ax.legend()
    if has_fid:
        ax = axes[0][1]
        minutes = [r["wall_seconds"] / 60 for r in history if "fid" in r]
        ax.plot(minutes, [r["fid"] for r in history if "fid" in r], "o-", color="C2")
        ax.set_xlabel("wall time (min)")
        ax.set_ylabel("FID (classifier features)", color="C2")
        ax.set_yscale("log")
        ax2 = ax.twinx()
        ax2.plot(minutes, [100 * r["class_acc"] for r in history if "fid" in r], "s--", color="C3")
        ax2.set_ylabel("class accuracy (%)", color="C3")
        ax.set_title("quality vs time")
    fig.tight_layout()
    atomic_replace(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)


def config_from_args(args) -> GANConfig:
    cfg = GANConfig()
    for name in ("epochs", "batch_size", "seed", "g_width", "d_width", "ema_decay", "loss", "eval_per_class"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(cfg, name, value)
    if getattr(args, "lr", None):
        cfg.lr_g = cfg.lr_d = args.lr
    if getattr(args, "lr_g", None):
        cfg.lr_g = args.lr_g
    if getattr(args, "lr_d", None):
        cfg.lr_d = args.lr_d
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise InkdigitsError(f"--ema-decay {cfg.ema_decay} must be in [0, 1)")
    cfg.extra = {"command": "inkdigits " + " ".join(sys.argv[1:]) if sys.argv else ""}
    return cfg


def train_from_args(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    elif int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > 1:
        # K processes on one CPU: split the cores instead of oversubscribing them K-fold.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["LOCAL_WORLD_SIZE"])))
    trainer = Trainer(config_from_args(args), args.out, device=args.device, limit=args.limit, resume=args.resume,
                      classifier=args.classifier, resume_epochs=args.epochs)  # fmt: skip
    try:
        trainer.train()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0
