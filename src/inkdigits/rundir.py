"""A run folder and everything written into it, each file atomically:

    checkpoint.pt               the whole training state, at every evaluation (and on SIGINT/SIGTERM)
    metrics.jsonl               one line per evaluation, rebuilt from the checkpoint's history
    samples/step_NNNNNNN.png    fixed styles x every class
    classifier.safetensors+.json  the reference classifier, on data other than MNIST (judge.py)
    loss.png                    losses, and validation FID / class accuracy against wall time
    generator.safetensors+.json the exported EMA generator (best validation FID, or the last epoch)
    generator_last.*            the latest EMA generator
"""

from __future__ import annotations

import contextlib
import json
import pickle
import shutil
import tempfile
from pathlib import Path

import torch

from . import images as im
from .errors import InkdigitsError
from .fileio import atomic_replace, atomic_write_text
from .weights import save_weights

CHECKPOINT = "checkpoint.pt"
MIN_FREE_BYTES = 200 * 2**20  # a checkpoint is a few MB; refuse to start with less than this free


class RunDir:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.checkpoint = self.path / CHECKPOINT

    def preflight(self, resume: bool, writer: bool = True) -> dict | None:
        """Fail before training, not after an hour. Returns the checkpoint's state when resuming.

        ``writer``: this process writes the files (DDP rank 0), so check that it can."""
        if self.path.exists() and not self.path.is_dir():
            raise InkdigitsError(f"{self.path}: --out must be a folder, and this is a file")
        if resume and not self.checkpoint.is_file():
            raise InkdigitsError(f"{self.checkpoint}: nothing to resume (no checkpoint in {self.path})")
        if not resume and self.checkpoint.exists():
            raise InkdigitsError(f"{self.path}: already holds a run; add --resume to continue it or pick another --out")
        if writer:  # nothing is created yet: a run that fails on its inputs leaves no folder behind (create())
            check_writable(self.path)
        return self.load_checkpoint() if resume else None

    def create(self) -> None:
        """Make the run folder, once the inputs are known to be good."""
        with self.writing():
            (self.path / "samples").mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def writing(self):
        """A failed write (a full disk, a folder made read-only) is one line, and says what was kept."""
        try:
            yield
        except OSError as e:
            kept = f"the last checkpoint is kept in {self.checkpoint}; " if self.checkpoint.exists() else ""
            raise InkdigitsError(f"{e.filename or self.path}: cannot write ({e.strerror or e}); {kept}free space or "
                                 "fix the folder, then run again" + (" with --resume" if kept else "")) from None

    def load_checkpoint(self) -> dict:
        try:
            state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
            missing = {"model", "train", "gan", "history"} - set(state)
        except pickle.UnpicklingError:  # weights_only refused it: it holds Python objects, never loaded here
            raise InkdigitsError(f"{self.checkpoint}: not a plain tensor checkpoint (it holds Python objects, which "
                                 "are never loaded)") from None  # fmt: skip
        except Exception as e:
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise InkdigitsError(f"{self.checkpoint}: cannot read checkpoint ({type(e).__name__}: {first})") from None
        if missing:
            raise InkdigitsError(f"{self.checkpoint}: not an inkdigits checkpoint (no {sorted(missing)[0]})")
        return state

    def save_checkpoint(self, state: dict) -> None:
        atomic_replace(self.checkpoint, lambda tmp: torch.save(state, tmp))
        # Rebuilt from the checkpoint's history, so a kill between the two writes cannot duplicate an epoch.
        atomic_write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in state["history"]))

    def save_samples(self, images, step: int, ncols: int) -> None:
        im.save_png(im.grid(images, ncols=ncols), self.path / "samples" / f"step_{step:07d}.png", scale=2)

    def export(self, net: torch.nn.Module, info: dict, best: bool) -> None:
        """The latest generator always; ``generator.safetensors`` too when it is the one to ship."""
        save_weights(net, self.path / "generator_last.safetensors", info)
        if best:
            save_weights(net, self.path / "generator.safetensors", info)

    def plot(self, history: list[dict]) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [r["step"] for r in history]
        scored = [r for r in history if r.get("fid") is not None]
        fig, axes = plt.subplots(1, 2 if scored else 1, figsize=(11 if scored else 6, 4), squeeze=False)
        ax = axes[0][0]
        ax.plot(steps, [r["loss_d"] for r in history], label="discriminator")
        ax.plot(steps, [r["loss_g"] for r in history], label="generator")
        ax.set(xlabel="step", ylabel="loss", title="GAN losses")
        ax.legend()
        if scored:
            ax = axes[0][1]
            minutes = [r["wall_seconds"] / 60 for r in scored]
            ax.plot(minutes, [r["fid"] for r in scored], "o-", color="C2")
            ax.set(xlabel="wall time (min)", yscale="log", title="quality vs time (validation split)")
            ax.set_ylabel("FID (classifier features)", color="C2")
            ax2 = ax.twinx()
            ax2.plot(minutes, [100 * r["class_acc"] for r in scored], "s--", color="C3")
            ax2.set_ylabel("class accuracy (%)", color="C3")
        fig.tight_layout()
        atomic_replace(self.path / "loss.png", lambda tmp: fig.savefig(tmp, format="png", dpi=90))
        plt.close(fig)


def check_writable(path: Path) -> None:
    """``path`` (a folder, made later if missing) can be written: its nearest existing folder is writable and has
    MIN_FREE_BYTES free. Creates nothing."""
    existing = Path(path)
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise InkdigitsError(f"{path}: cannot make a folder there ({existing} is a file)")
    try:  # a real write (permissions alone miss read-only mounts, and root ignores them)
        with tempfile.TemporaryFile(dir=existing, prefix=".inkdigits-write-test-"):
            pass
    except OSError as e:
        raise InkdigitsError(f"{path}: cannot write there ({existing}: {e.strerror or e})") from None
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise InkdigitsError(f"{path}: only {free / 2**20:.0f} MB free, need {MIN_FREE_BYTES // 2**20} MB")
