"""The real app server under concurrent users: `streamlit run app.py`, one headless Chromium with one context
(its own session) per user, each typing a new seed and clicking Generate again and again. Measures
click-to-images time and errors, and checks that every page showed its own result: the title names the
page's own seed, and no two clicks anywhere got the same images.

    python benchmarks/app_load_browser.py [--users 16] [--clicks 20]
Needs Debian's chromium (`make test` installs it) and playwright.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _serving as serving  # noqa: E402
from _serving import CHROMIUM  # noqa: E402
from _serving import CHROMIUM_FLAGS as FLAGS  # noqa: E402


def start_server(port: int, log: Path) -> subprocess.Popen:
    try:
        return serving.start(serving.streamlit_command(port), port, log, env={**os.environ, "OMP_NUM_THREADS": "1"})
    except RuntimeError as e:
        raise SystemExit(f"streamlit did not start ({e}); see {log}") from None


async def user(browser, url: str, uid: int, clicks: int, results: list, errors: list):
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(url, timeout=120_000)
    await page.get_by_role("button", name="Generate").wait_for(timeout=120_000)
    seed_box = page.locator('input[aria-label="Seed"]').first
    await seed_box.wait_for(timeout=120_000)
    previous = None
    for k in range(clicks):
        seed = 1_000_000 + uid * 1000 + k  # unique per user and click
        try:
            await seed_box.fill(str(seed))
            await seed_box.press("Enter")
            t0 = time.perf_counter()
            await page.get_by_role("button", name="Generate").click()
            await page.get_by_text(f"seed {seed}", exact=False).first.wait_for(timeout=60_000)
            # The title and the images arrive as separate updates: wait until all five images are new and loaded.
            await page.wait_for_function(
                """previous => {
                    const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
                    return imgs.length === 5 && imgs.every(i => i.complete && i.naturalWidth > 0)
                        && (previous === null || imgs[0].getAttribute('src') !== previous);
                }""", arg=previous, timeout=60_000)  # fmt: skip
            images = page.locator('[data-testid="stImage"] img')
            srcs = tuple([await images.nth(i).get_attribute("src") for i in range(5)])
            previous = srcs[0]
            results.append((uid, seed, time.perf_counter() - t0, srcs))
        except Exception as e:  # count every failure, keep clicking
            errors.append(f"user {uid} click {k}: {type(e).__name__}: {str(e).splitlines()[0]}")
    await context.close()


async def run(url: str, users: int, clicks: int):
    from playwright.async_api import async_playwright

    results, errors = [], []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        start = time.perf_counter()
        await asyncio.gather(*(user(browser, url, u, clicks, results, errors) for u in range(users)))
        wall = time.perf_counter() - start
        await browser.close()
    return results, errors, wall


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=16)
    p.add_argument("--clicks", type=int, default=20)
    p.add_argument("--port", type=int, default=8599)
    p.add_argument("--dry-run", action="store_true", help="2 users x 2 clicks")
    args = p.parse_args()
    if args.dry_run:
        args.users, args.clicks = 2, 2
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")
    log = Path(os.environ.get("TMPDIR", "/tmp")) / "app_load_browser.log"
    server = start_server(args.port, log)
    try:
        results, errors, wall = asyncio.run(run(f"http://127.0.0.1:{args.port}", args.users, args.clicks))
    finally:
        server.terminate()
        server.wait(timeout=20)
    times = [r[2] for r in results]
    first_seen = {}
    shared = 0  # clicks that showed images another click (any user's) had shown
    for uid, seed, _, srcs in results:
        shared += srcs in first_seen
        first_seen.setdefault(srcs, (uid, seed))
    print(f"{args.users} users x {args.clicks} clicks on `streamlit run app.py` ({os.cpu_count()} CPU cores), "
          f"one Chromium, one context per user; {wall:.0f} s in all\n")
    print("| users | clicks | p50 s | p95 s | errors | clicks showing another click's images |")
    print("|---:|---:|---:|---:|---:|---:|")
    p50 = statistics.median(times) if times else float("nan")
    p95 = float(np.percentile(times, 95)) if times else float("nan")
    print(f"| {args.users} | {len(results) + len(errors)} | {p50:.2f} | {p95:.2f} | {len(errors)} | {shared} |")
    for e in errors[:5]:
        print("error:", e)
    if "Traceback" in log.read_text():
        print(f"the server logged a traceback: see {log}")
    if errors or shared or not results:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
