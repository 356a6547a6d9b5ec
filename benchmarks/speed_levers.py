"""Which changes make a CPU training step faster? Each lever alone, against the step as it is, one run.

    python benchmarks/speed_levers.py [--threads 2] [--steps 40] [--levers fused_adam,channels_last,...]

Every lever is applied from outside the library (new optimisers, converted modules, a compiled forward), so a
lever can be measured before it is built in. Each row runs in its own process, baseline rows in between, so the
machine's drift shows. Run it on an otherwise idle machine.
"""

import argparse
import json
import subprocess
import sys
import time

import torch

from inkdigits.config import ModelConfig, TrainConfig
from inkdigits.gan import ConditionalGAN

LEVERS = {
    "baseline": "the step as it is",
    "fused_adam": "Adam with fused=True (one kernel for all parameters)",
    "foreach_adam": "Adam with foreach=True",
    "channels_last": "both networks and their inputs in channels_last memory format",
    "no_sn_update_in_g_step": "D in eval mode for G's update: spectral norm's power iteration once a step, not twice",
    "compile": "torch.compile of G and D (inductor); its warm-up is reported apart",
    "bf16": "bf16 autocast on the CPU",
    "batch128": "batch 128 (images/s compares; quality needs its own check)",
}


def build(lever: str) -> tuple[ConditionalGAN, int]:
    batch = 128 if lever == "batch128" else 64
    gan = ConditionalGAN(ModelConfig(), TrainConfig(augment="none", batch_size=batch))
    cfg = gan.config
    if lever in ("fused_adam", "foreach_adam"):
        kind = {"fused": True} if lever == "fused_adam" else {"foreach": True}
        gan.opt_g = torch.optim.Adam(gan.G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2), **kind)
        gan.opt_d = torch.optim.Adam(gan.D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2), **kind)
    if lever == "channels_last":
        gan.G.to(memory_format=torch.channels_last)
        gan.D.to(memory_format=torch.channels_last)
        d_forward = gan.D.forward
        gan.D.forward = lambda x, y: d_forward(x.contiguous(memory_format=torch.channels_last), y)
    if lever == "no_sn_update_in_g_step":
        d, calls = gan.D, {"n": 0}

        def forward(x, y, _forward=d.forward):
            # the step calls D twice: real and fake for D's update, then fake for G's; the second in eval mode,
            # where spectral norm reuses its vectors instead of running another power iteration
            calls["n"] += 1
            if calls["n"] % 2:
                return _forward(x, y)
            d.eval()
            try:
                return _forward(x, y)
            finally:
                d.train()

        d.forward = forward
    if lever == "compile":
        gan.G_train, gan.D_train = torch.compile(gan.G), torch.compile(gan.D)
    if lever == "bf16":
        gan.autocast = True
    return gan, batch


def time_lever(lever: str, threads: int, steps: int, warmup: int) -> dict:
    torch.set_num_threads(threads)
    gan, batch = build(lever)
    x = torch.randint(0, 256, (batch, 28, 28), dtype=torch.uint8)
    y = torch.randint(0, 10, (batch,))
    t0 = time.perf_counter()
    for _ in range(warmup):
        gan.train_step(x, y)
    warm = time.perf_counter() - t0
    start = time.perf_counter()
    for _ in range(steps):
        gan.train_step(x, y)
    ms = (time.perf_counter() - start) / steps * 1000
    return {"lever": lever, "ms": ms, "images_per_s": batch / ms * 1000, "warmup_s": warm}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--levers", default=",".join(k for k in LEVERS if k != "baseline"))
    p.add_argument("--one", help=argparse.SUPPRESS)  # a single lever, in this process (for the parent)
    p.add_argument("--dry-run", action="store_true", help="2 steps of the baseline and one lever")
    args = p.parse_args()
    if args.one:
        return print(json.dumps(time_lever(args.one, args.threads, args.steps, args.warmup)))
    if args.dry_run:
        args.steps, args.warmup, args.levers = 2, 1, "fused_adam"
    order = ["baseline"]
    for lever in args.levers.split(","):
        order += [lever, "baseline"]
    rows = []
    for lever in order:
        out = subprocess.run([sys.executable, __file__, "--one", lever, "--threads", str(args.threads), "--steps",
                              str(args.steps), "--warmup", str(args.warmup)], capture_output=True, text=True)  # fmt: skip
        if out.returncode:
            rows.append({"lever": lever, "error": (out.stderr.strip().splitlines() or ["?"])[-1][:80]})
        else:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{args.steps} steps after {args.warmup} warm-up, {args.threads} threads; speed-up: images/s against the "
          "mean of the baseline rows on either side\n")
    print("| lever | what | ms/step | images/s | speed-up | warm-up s |")
    print("|---|---|---:|---:|---:|---:|")
    for i, r in enumerate(rows):
        if r["lever"] == "baseline" and i:
            continue
        if "error" in r:
            print(f"| {r['lever']} | {LEVERS[r['lever']]} | failed: {r['error']} | | | |")
            continue
        around = [rows[j]["images_per_s"] for j in (i - 1, i + 1) if 0 <= j < len(rows)
                  and rows[j]["lever"] == "baseline" and "ms" in rows[j]] or [r["images_per_s"]]  # fmt: skip
        base = sum(around) / len(around)
        print(f"| {r['lever']} | {LEVERS[r['lever']]} | {r['ms']:.1f} | {r['images_per_s']:.0f} | "
              f"{r['images_per_s'] / base:.2f}x | {r['warmup_s']:.1f} |")


if __name__ == "__main__":
    main()
