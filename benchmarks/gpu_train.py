"""The production config on GPUs: `torchrun` DDP on CUDA (bf16 autocast, NCCL) for a few epochs, then
steps/s, images/s and time-to-quality (validation FID and class accuracy per epoch) from the run's
metrics.jsonl. CPU stays the tested path; run this wherever GPUs are at hand.

    python benchmarks/gpu_train.py [--gpus 1] [--epochs 3] [--out runs/gpu]
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out", type=Path)
    p.add_argument("--dry-run", action="store_true", help="one CPU process, a tiny model, 256 images")
    args = p.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="gpu-train-")) / "run"
    if args.out and out.exists():
        shutil.rmtree(out)
    if args.dry_run:
        cmd = [sys.executable, "-m", "inkdigits", "train", "--out", str(out), "--epochs", "1", "--limit", "256",
               "--g-width", "8", "--d-width", "8", "--device", "cpu", "--threads", "1", "--eval-per-class", "0"]  # fmt: skip
    else:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device here: this benchmark is for GPU machines (use --dry-run to check it)")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.gpus),
               "-m", "inkdigits", "train", "--out", str(out), "--epochs", str(args.epochs), "--device", "cuda"]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - start
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = records[-1]["step"]
    train_seconds = sum(r["seconds"] for r in records)
    if args.dry_run:
        device = "CPU (dry run)"
    else:
        import torch

        device = f"{args.gpus} x {torch.cuda.get_device_name(0)}"
    print(f"\n{device}: {len(records)} epochs, {steps} steps in {train_seconds:.0f} s of training ({wall:.0f} s wall, "
          f"evaluation and start-up included)\n")  # fmt: skip
    print("| epoch | steps/s | images/s | wall min | val class acc | val FID |")
    print("|---:|---:|---:|---:|---:|---:|")
    previous_step = 0
    for r in records:
        acc = f"{r['class_acc']:.2%}" if r.get("class_acc") is not None else "off"
        fid = f"{r['fid']:.3f}" if r.get("fid") is not None else "off"
        steps_per_s = (r["step"] - previous_step) / max(r["seconds"], 1e-9)
        previous_step = r["step"]
        print(f"| {r['epoch']} | {steps_per_s:.1f} | {r['images_per_s']:.0f} | {r['wall_seconds'] / 60:.1f} | {acc} | {fid} |")


if __name__ == "__main__":
    main()
