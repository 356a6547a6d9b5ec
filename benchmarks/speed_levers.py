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
    "convt_channels_last": "G's two transposed convs and its last conv in channels_last, its BatchNorms not",
    "d_width32": "discriminator widths 32/64/128 instead of 48/96/192 (quality needs its own check)",
    "fused_adam+convt_channels_last": "the two together",
}


def channels_last_around(module: torch.nn.Module) -> None:
    """Run ``module`` on a channels_last copy of its input and hand back a contiguous output (BatchNorm's
    backward is 3x slower in channels_last on this CPU, a transposed conv's 1.4x faster)."""
    module.to(memory_format=torch.channels_last)
    forward = module.forward
    module.forward = lambda x: forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


def build(lever: str) -> tuple[ConditionalGAN, int]:
    batch = 128 if lever == "batch128" else 64
    model = ModelConfig(d_width=32) if lever == "d_width32" else ModelConfig()
    gan = ConditionalGAN(model, TrainConfig(augment="none", batch_size=batch))
    cfg = gan.config
    if lever.endswith("channels_last") and lever != "channels_last":
        for module in (gan.G.up14, gan.G.up28, gan.G.to_pixels):
            channels_last_around(module)
        lever = lever.split("+")[0]
    if lever in ("fused_adam", "foreach_adam"):
        kind = {"fused": True} if lever == "fused_adam" else {"foreach": True}
        gan.opt_g = torch.optim.Adam(gan.G.parameters(), lr=gan.lr_g, betas=(cfg.beta1, cfg.beta2), **kind)
        gan.opt_d = torch.optim.Adam(gan.D.parameters(), lr=gan.lr_d, betas=(cfg.beta1, cfg.beta2), **kind)
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
    p.add_argument("--rounds", type=int, default=1, help="repeat the whole order; speed-ups are averaged")
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
    rows, ratios = [], {}
    for lever in order * args.rounds:
        out = subprocess.run([sys.executable, __file__, "--one", lever, "--threads", str(args.threads), "--steps",
                              str(args.steps), "--warmup", str(args.warmup)], capture_output=True, text=True)  # fmt: skip
        if out.returncode:
            rows.append({"lever": lever, "error": (out.stderr.strip().splitlines() or ["?"])[-1][:80]})
        else:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{args.steps} steps after {args.warmup} warm-up, {args.threads} threads, {args.rounds} round(s); speed-up: "
          "images/s against the mean of the baseline rows on either side, averaged over the rounds\n")
    print("| lever | what | ms/step | images/s | speed-up | warm-up s |")
    print("|---|---|---:|---:|---:|---:|")
    for i, r in enumerate(rows):
        if "error" in r:
            ratios.setdefault(r["lever"], []).append(r)
            continue
        around = [rows[j]["images_per_s"] for j in (i - 1, i + 1) if 0 <= j < len(rows)
                  and rows[j]["lever"] == "baseline" and "ms" in rows[j]] or [r["images_per_s"]]  # fmt: skip
        ratios.setdefault(r["lever"], []).append({**r, "ratio": r["images_per_s"] / (sum(around) / len(around))})
    for lever, runs in ratios.items():
        failed = [r for r in runs if "error" in r]
        if failed:
            print(f"| {lever} | {LEVERS[lever]} | failed: {failed[0]['error']} | | | |")
            continue
        mean = {key: sum(r[key] for r in runs) / len(runs) for key in ("ms", "images_per_s", "ratio", "warmup_s")}
        print(f"| {lever} | {LEVERS[lever]} | {mean['ms']:.1f} | {mean['images_per_s']:.0f} | "
              f"{1.0 if lever == 'baseline' else mean['ratio']:.2f}x | {mean['warmup_s']:.1f} |")


if __name__ == "__main__":
    main()
