"""Where a CPU training step's time goes: each convolution of G and D timed alone, forward and backward, at the
batch it sees in a step, with its arithmetic and the rate this CPU reaches on it.

    python benchmarks/step_profile.py [--threads 2] [--reps 30] [--g-width 48] [--d-width 48]

A step runs G forward and backward once (batch B), D forward and backward on real and fake together (2B) and
again on the fakes for G's update (B): D's rows count both. Run it on an otherwise idle machine.
"""

import argparse
import time

import torch

from inkdigits.config import ModelConfig, TrainConfig
from inkdigits.gan import ConditionalGAN


def conv_flops(layer: torch.nn.Module, out_shape: torch.Size) -> float:
    """Multiply-adds x 2 of a forward pass: every output value of a conv (a transposed conv: every input value)
    takes in_channels x kernel products."""
    k = layer.kernel_size[0] * layer.kernel_size[1]
    if isinstance(layer, torch.nn.ConvTranspose2d):
        return 2.0 * layer.in_channels * k * layer.out_channels * out_shape[0] * (out_shape[2] * out_shape[3]) / 4
    return 2.0 * layer.in_channels * k * out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3]


def time_layer(layer: torch.nn.Module, x: torch.Tensor, reps: int) -> tuple[float, float, torch.Size]:
    """(forward ms, backward ms, output shape) of ``layer`` on ``x``; backward takes the input's and the weights'
    gradients, as in training."""
    x = x.detach().clone().requires_grad_(True)
    for _ in range(3):
        layer(x).sum().backward()
    fwd = bwd = 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        y = layer(x)
        t1 = time.perf_counter()
        y.sum().backward()
        fwd, bwd = fwd + t1 - t0, bwd + time.perf_counter() - t1
    return fwd / reps * 1e3, bwd / reps * 1e3, y.shape


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--g-width", type=int, default=ModelConfig.g_width)
    p.add_argument("--d-width", type=int, default=ModelConfig.d_width)
    p.add_argument("--dry-run", action="store_true", help="2 repetitions of tiny networks")
    args = p.parse_args()
    if args.dry_run:
        args.reps, args.g_width, args.d_width = 2, 8, 8
    torch.set_num_threads(args.threads)
    batch = TrainConfig.batch_size
    gan = ConditionalGAN(ModelConfig(g_width=args.g_width, d_width=args.d_width), TrainConfig(augment="none"))
    g, d = gan.G, gan.D
    x = torch.randn(batch, g.c7, g.base, g.base)
    rows = []
    for name, layer in (("G up14 (transposed)", g.up14), ("G up28 (transposed)", g.up28), ("G to_pixels", g.to_pixels)):
        fwd, bwd, shape = time_layer(layer, x, args.reps)
        rows.append((name, batch, 1, fwd, bwd, conv_flops(layer, shape)))
        x = torch.randn(shape)
    x = torch.randn(2 * batch, 1, x.shape[2], x.shape[3])
    for name, layer in (("D conv14", d.conv14), ("D conv7", d.conv7), ("D conv7b", d.conv7b)):
        fwd, bwd, shape = time_layer(layer, x, args.reps)  # spectral norm's power iteration included, as in training
        rows.append((name, 2 * batch, 1.5, fwd, bwd, conv_flops(layer, shape)))  # 2B, then B again: 1.5 x this
        x = torch.randn(shape)
    step = sum((fwd + bwd) * times for _, _, times, fwd, bwd, _ in rows)
    print(f"G {args.g_width} / D {args.d_width} wide, batch {batch}, {args.threads} threads, {args.reps} repetitions; "
          f"'per step' counts D's layers 1.5 times (2B then B images)\n")  # fmt: skip
    print("| layer | batch | forward ms | backward ms | GFLOP forward | GFLOP/s forward | GFLOP/s backward | share of conv time per step |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, times, fwd, bwd, flops in rows:
        print(f"| {name} | {n} | {fwd:.2f} | {bwd:.2f} | {flops / 1e9:.3f} | {flops / fwd / 1e6:.0f} | "
              f"{2 * flops / bwd / 1e6:.0f} | {(fwd + bwd) * times / step:.0%} |")  # fmt: skip
    print(f"\nthe convolutions alone: {step:.1f} ms a step")


if __name__ == "__main__":
    main()
