"""Sampling speed on the CPU: latency for 5 digits (1 thread) and throughput for batches of 1000.

    python benchmarks/sample_speed.py [--weights models/generator.safetensors] [--runs 200]
"""

import argparse
import statistics
import time

import numpy as np
import torch

from inkdigits import load_generator


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
        for _ in range(20):
            g.generate([7] * 5, seed=0)
        times = []
        for i in range(args.runs):
            t0 = time.perf_counter()
            g.generate([7] * 5, seed=i)
            times.append(time.perf_counter() - t0)
        labels = np.repeat(np.arange(10), 100)
        g.generate(labels, seed=0)
        batches = []
        for i in range(5):
            t0 = time.perf_counter()
            g.generate(labels, seed=i)
            batches.append(time.perf_counter() - t0)
        rows.append((threads, statistics.median(times) * 1000, np.percentile(times, 95) * 1000,
                     1000 / statistics.median(batches)))
    print(f"weights: {g.path}")
    print("| threads | 5 digits, median ms | 5 digits, p95 ms | batch of 1000, images/s |")
    print("|---:|---:|---:|---:|")
    for t, med, p95, ips in rows:
        print(f"| {t} | {med:.2f} | {p95:.2f} | {ips:,.0f} |")


if __name__ == "__main__":
    main()
