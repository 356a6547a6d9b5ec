"""Sampling speed on the CPU: latency for 5 digits and throughput for batches of 1000, with PyTorch (the
sampling API) and with onnxruntime on the exported ONNX file (`inkdigits export-onnx`).

    python benchmarks/sample_speed.py [--weights models/generator.safetensors] [--runs 200]
Run it on an otherwise idle machine.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from inkdigits import load_generator


def timings(draw, runs: int) -> tuple[float, float, float]:
    """(median ms and p95 ms for 5 digits, images/s for batches of 1000) of ``draw(labels, seed)``."""
    five, thousand = np.full(5, 7), np.repeat(np.arange(10), 100)
    for i in range(20):
        draw(five, i)
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        draw(five, i)
        times.append(time.perf_counter() - t0)
    draw(thousand, 0)
    batches = []
    for i in range(5):
        t0 = time.perf_counter()
        draw(thousand, i)
        batches.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, float(np.percentile(times, 95)) * 1000, 1000 / statistics.median(batches)


def onnx_drawer(g, threads: int):
    """A draw function on onnxruntime, or None without the onnx extra."""
    try:
        import onnxruntime as ort

        from inkdigits.onnx_export import export_onnx
    except ImportError:
        return None
    path = export_onnx(g, Path(tempfile.mkdtemp(prefix="onnx-")) / "generator.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def draw(labels, seed):
        z = g.styles(len(labels), seed)  # the same styles as the API draws for this seed
        return session.run(["images"], {"z": z, "labels": labels.astype(np.int64)})[0]

    return draw


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--weights")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--dry-run", action="store_true", help="a few runs, to check that the script works")
    args = p.parse_args()
    if args.dry_run:
        args.runs = 3
    g = load_generator(args.weights)
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        rows.append(("PyTorch", threads, *timings(lambda labels, seed: g.generate(labels, seed=seed), args.runs)))
        draw = onnx_drawer(g, threads)
        if draw is not None:
            rows.append(("onnxruntime", threads, *timings(draw, args.runs)))
    print(f"weights: {g.path}")
    print("| runtime | threads | 5 digits, median ms | 5 digits, p95 ms | batch of 1000, images/s |")
    print("|---|---:|---:|---:|---:|")
    for name, t, med, p95, ips in rows:
        print(f"| {name} | {t} | {med:.2f} | {p95:.2f} | {ips:,.0f} |")


if __name__ == "__main__":
    main()
