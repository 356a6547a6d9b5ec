"""Processes: the device, the DDP process group under torchrun, and an agreed stop on SIGINT/SIGTERM."""

from __future__ import annotations

import inspect
import os
import signal
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from .errors import InkdigitsError

EXIT_CODE = {signal.SIGINT: 130, signal.SIGTERM: 143}
# Don't re-broadcast buffers at every forward (newer torch renamed the switch). G's BatchNorm statistics stay
# per rank: broadcasting them in place breaks autograd, and D has none.
_DDP_ARGS = inspect.signature(DDP.__init__).parameters
NO_BUFFER_SYNC = {"forward_sync_buffers": False} if "forward_sync_buffers" in _DDP_ARGS else {"broadcast_buffers": False}


@dataclass
class Processes:
    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, module):
        return DDP(module, **NO_BUFFER_SYNC) if self.world > 1 else module

    def average(self, tensors: list[torch.Tensor]) -> None:
        """Average tensors over the ranks, in place (gloo has no AVG, so sum and divide)."""
        if self.world == 1:
            return
        for t in tensors:
            dist.all_reduce(t)
            t.div_(self.world)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on any (so all ranks stop at the same step)."""
        if self.world == 1:
            return flag
        t = torch.tensor([float(flag)], device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t)
        return t.item() > 0


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InkdigitsError("--device cuda: no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise InkdigitsError("--device mps: MPS is not available")
    return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if name == "cuda" else name)


def setup(device: str = "auto") -> Processes:
    """Under torchrun, join the process group (NCCL on CUDA, else gloo); alone, a world of one."""
    dev = pick_device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    if dist.is_initialized():
        return Processes(dist.get_rank(), dist.get_world_size(), dev)
    return Processes(0, 1, dev)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def default_threads() -> int | None:
    """K processes on one CPU split its cores instead of oversubscribing them K-fold."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, (os.cpu_count() or 1) // local) if local > 1 else None


class StopSignal:
    """``with StopSignal() as stop:`` records SIGINT/SIGTERM instead of dying mid-write; the loop polls it."""

    def __init__(self):
        self.signum: int | None = None
        self._old: dict = {}

    def __enter__(self):
        for sig in EXIT_CODE:
            try:
                self._old[sig] = signal.signal(sig, self._record)
            except ValueError:  # not the main thread (e.g. a test runner's thread): no handlers there
                pass
        return self

    def _record(self, signum, frame) -> None:
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    @property
    def exit_code(self) -> int:
        return EXIT_CODE.get(self.signum, 143)
