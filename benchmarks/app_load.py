"""N simulated app users, each clicking Generate repeatedly, through the app's own code path
(one cached generator shared by all threads, 5 images per click, each with its own seed).

    python benchmarks/app_load.py [--users 8] [--clicks 50]
"""

import argparse
import statistics
import threading
import time

import numpy as np
import torch

from inkdigits import load_generator


def run_users(g, users: int, clicks: int):
    """``users`` threads, each clicking ``clicks`` times; returns (latencies, errors, wall seconds)."""
    latencies, errors, lock = [], [], threading.Lock()

    def user(uid):
        rng = np.random.default_rng(uid)
        for _ in range(clicks):
            digit = int(rng.integers(10))
            t0 = time.perf_counter()
            try:
                out = g.generate([digit] * 5, seed=int(rng.integers(2**31)))
                assert out.shape == (5, 28, 28)
            except Exception as e:  # count every failure
                with lock:
                    errors.append(repr(e))
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=user, args=(u,)) for u in range(users)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors, time.perf_counter() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--weights")
    p.add_argument("--users", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--clicks", type=int, default=50)
    p.add_argument("--dry-run", action="store_true", help="2 users x 3 clicks, to check that the script works")
    args = p.parse_args()
    if args.dry_run:
        args.users, args.clicks = [1, 2], 3
    torch.set_num_threads(1)  # what the app sets: one thread per request, many requests at once
    g = load_generator(args.weights)
    g.generate([0] * 5, seed=0)
    print("| users | requests | requests/s | p50 ms | p95 ms | errors |")
    print("|---:|---:|---:|---:|---:|---:|")
    for users in args.users:
        latencies, errors, wall = run_users(g, users, args.clicks)
        n = len(latencies) + len(errors)
        print(f"| {users} | {n} | {n / wall:.0f} | {statistics.median(latencies) * 1000:.1f} | "
              f"{np.percentile(latencies, 95) * 1000:.1f} | {len(errors)} |")
        if errors:
            print(f"first error: {errors[0]}")


if __name__ == "__main__":
    main()
