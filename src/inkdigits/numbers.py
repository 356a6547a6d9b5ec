"""A labelled dataset of written numbers for OCR: ``inkdigits export --numbers N --out numbers/``.

Each item is a random string (``--length 4-10`` digits) or one drawn from a ``--pattern`` such as
``ddd-dddd`` or ``dd/dd/dddd`` (``d``: a random digit; separators are kept), written with the composer by one
hand or a hand per digit (``--hands``), the styles spread wider than learned (limits.NUMBERS_NEATNESS). The
folder gets ``NNNNNN.png`` files (or one ``images.npz``: zero-padded images, their heights and widths, and the
texts) and ``labels.jsonl`` (file or index, text, per-character boxes). Items are made by a pool of worker
processes; the folder appears only once complete (written beside it, then renamed).
"""

from __future__ import annotations

import contextlib
import glob
import json
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .compose import MAX_LINE, MAX_NUMBER_DIGITS, SEPARATORS
from .errors import InkdigitsError
from .formats import numbers_npz_bytes
from .limits import NUMBERS_NEATNESS


def parse_length(text: str) -> tuple[int, int]:
    """'4-10' -> (4, 10); '6' -> (6, 6); bounds 1..MAX_NUMBER_DIGITS."""
    try:
        lo, dash, hi = text.partition("-")
        if dash and not hi.strip():
            raise ValueError("no upper bound")
        lo, hi = int(lo), int(hi or lo)
    except ValueError:
        raise InkdigitsError(f"--length {text!r}: expected N or N-M, e.g. 4-10") from None
    if not 1 <= lo <= hi <= MAX_NUMBER_DIGITS:
        raise InkdigitsError(f"--length {text!r}: lengths must be 1 to {MAX_NUMBER_DIGITS} digits, the smaller first")
    return lo, hi


def check_pattern(pattern: str) -> str:
    bad = sorted({ch for ch in pattern if ch != "d" and ch not in SEPARATORS})
    if bad or "d" not in pattern:
        found = f" (found {''.join(bad)!r})" if bad else ""
        raise InkdigitsError(f"--pattern {pattern!r}: use d for a digit and the separators - . / : and space{found}")
    if pattern.count("d") > MAX_NUMBER_DIGITS or len(pattern) > MAX_LINE:
        raise InkdigitsError(f"--pattern {pattern!r}: at most {MAX_NUMBER_DIGITS} digits and {MAX_LINE} characters")
    return pattern


def texts(n: int, seed: int, length: tuple[int, int] = (4, 10), pattern: str | None = None) -> list[str]:
    rng = np.random.default_rng([seed, 1])
    if pattern:
        return ["".join(str(rng.integers(10)) if ch == "d" else ch for ch in pattern) for _ in range(n)]
    return ["".join(map(str, rng.integers(0, 10, rng.integers(length[0], length[1] + 1)))) for _ in range(n)]


def item_seed(seed: int, i: int) -> int:
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


_worker: dict = {}


def _init(g, options):
    """Each worker's setup. Workers are forked, so they share the loaded generator's memory (copy-on-write)."""
    import torch

    torch.set_num_threads(1)  # the pool uses the cores; each worker one thread
    if multiprocessing.parent_process() is not None:  # a pool worker: the main process handles signals
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        die_with_parent()
    _worker.update(g=g, options=options)


def die_with_parent() -> None:
    """Linux: this worker gets SIGTERM when the main process dies, even by SIGKILL, instead of living on to
    print broken-pipe tracebacks. Elsewhere the pool's own shutdown is all there is."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if multiprocessing.parent_process() is not None and not multiprocessing.parent_process().is_alive():
        os._exit(1)  # the main process died before the call above


def _make(job):
    i, text, seed, per_digit, layout = job
    options = {**_worker["options"], "layout": layout}
    image, boxes = _worker["g"].write(text, seed=seed, new_hand_per_digit=per_digit, **options)
    return i, image, boxes


HANDS = ("mixed", "one", "per-digit")  # the first is the default
PER_DIGIT_SHARE = 0.5  # "mixed": the share of numbers with a new hand for every digit


# "mixed" (the default): half the numbers varied, half plain; it read real numbers best in every layout tried
# (benchmarks/ocr_numbers.py, RESULTS section 12)
LAYOUT_CHOICES = ("mixed", "varied", "plain")


def item_layouts(layout: str, seed: int, n: int) -> list[str]:
    """The layout of each of ``n`` numbers: all one, or (mixed) a seeded half varied, half plain."""
    if layout not in LAYOUT_CHOICES:
        raise InkdigitsError(f"--layout {layout!r}: one of {', '.join(LAYOUT_CHOICES)}")
    if layout != "mixed":
        return [layout] * n
    return ["varied" if v else "plain" for v in np.random.default_rng([seed, 4]).random(n) < 0.5]


def per_digit_hands(hands: str, seed: int, n: int) -> list[bool]:
    """Which of ``n`` numbers get a new hand per digit: none, all, or (mixed) a seeded PER_DIGIT_SHARE."""
    if hands not in HANDS:
        raise InkdigitsError(f"--hands {hands!r}: one of {', '.join(HANDS)}")
    if hands != "mixed":
        return [hands == "per-digit"] * n
    return (np.random.default_rng([seed, 3]).random(n) < PER_DIGIT_SHARE).tolist()


def number_jobs(n: int, seed: int, length=(4, 10), pattern=None, hands: str = HANDS[0],
                layout: str = LAYOUT_CHOICES[0]) -> list[tuple]:  # fmt: skip
    """What the export writes, one (index, text, seed, new hand per digit, layout) per number: the benchmarks
    build the same numbers in memory from it."""
    layouts, per_digit = item_layouts(layout, seed, n), per_digit_hands(hands, seed, n)
    return [(i, t, item_seed(seed, i), per_digit[i], layouts[i]) for i, t in enumerate(texts(n, seed, length, pattern))]


def export_numbers(g, n: int, seed: int, out: Path, length=(4, 10), pattern=None, fmt="png", workers=None,
                   options: dict | None = None, progress: bool = True, hands: str = HANDS[0]) -> dict:  # fmt: skip
    """Write the dataset drawn by the generator ``g`` (a loaded DigitGenerator) to ``out``: a new folder (png files or images.npz, with labels.jsonl), or for ``fmt``
    npz and an ``out`` ending in .npz, that one file with the labels and boxes inside. Returns counts and timing.

    Nothing partial is ever left at ``out``: the result is built beside it and renamed into place. A run that
    is killed leaves its temp folder behind; the next export to the same ``out`` removes it."""
    from tqdm import tqdm

    from . import images as im

    out = Path(out)
    one_file = out.suffix == ".npz"
    if one_file and fmt != "npz":
        raise InkdigitsError(f"{out}: a .npz name is for --format npz (png writes a folder of images)")
    if one_file and out.is_dir():
        raise InkdigitsError(f"{out}: is a folder; give a new .npz file name")
    if not one_file and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InkdigitsError(f"{out}: already exists and is not an empty folder; pick a new --out")
    workers = workers or os.cpu_count() or 1
    options = {"neatness": NUMBERS_NEATNESS, **(options or {})}
    jobs = number_jobs(n, seed, length, pattern, hands, options.pop("layout", LAYOUT_CHOICES[0]))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out)
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(out), dir=out.parent))
    except OSError as e:
        raise InkdigitsError(f"{out}: cannot write there ({e.strerror or e})") from None
    start, results, pool = time.perf_counter(), [None] * n, None
    try:
        with terminate_raises():
            if workers == 1:
                _init(g, options or {})
                made = map(_make, jobs)
            else:
                import multiprocessing as mp

                pool = mp.get_context("fork").Pool(workers, _init, (g, options or {}))
                made = pool.imap_unordered(_make, jobs, chunksize=16)
            bar = tqdm(total=n, desc="numbers", unit="img", disable=not progress, mininterval=0.5)
            for i, image, boxes in made:
                results[i] = (image if fmt == "npz" else None, [list(b) for b in boxes])
                if fmt == "png":
                    (tmp / f"{i:06d}.png").write_bytes(im.png_bytes(image))
                bar.update(1)
            if pool is not None:
                pool.close()
                pool.join()
            bar.close()
            if fmt == "npz":
                npz = numbers_npz_bytes([r[0] for r in results], [job[1] for job in jobs], [r[1] for r in results],
                                        g.classes, [job[3] for job in jobs])  # fmt: skip
                (tmp / "images.npz").write_bytes(npz)
            if one_file:
                os.replace(tmp / "images.npz", out)
                shutil.rmtree(tmp)
            else:
                with open(tmp / "labels.jsonl", "w") as labels:
                    for i, text, _, new_hands, layout in jobs:
                        name = {"file": f"{i:06d}.png"} if fmt == "png" else {"index": i}
                        hand = "per-digit" if new_hands else "one"
                        item = {**name, "text": text, "hands": hand, "layout": layout, "boxes": results[i][1]}
                        labels.write(json.dumps(item) + "\n")
                if out.exists():
                    out.rmdir()
                os.replace(tmp, out)
    except BaseException as e:
        if pool is not None:  # stop the workers now, not whenever the pool is collected
            pool.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise InkdigitsError(f"{out}: cannot write ({e.strerror or e}); nothing was written") from None
        raise
    seconds = time.perf_counter() - start
    return {"n": n, "seconds": seconds, "images_per_s": n / seconds, "workers": workers}


def temp_prefix(out: Path) -> str:
    """Temp folders carry the writer's process id, so a later run can tell a dead writer's from a live one's."""
    return f".{out.name}.{os.getpid()}."


def remove_stale_temps(out: Path) -> None:
    """Remove the temp folders of earlier exports to ``out`` whose process is gone (killed with SIGKILL)."""
    for tmp in out.parent.glob(f".{glob.escape(out.name)}.*.*"):
        pid = tmp.name[len(out.name) + 2 :].split(".")[0]
        if tmp.is_dir() and pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def terminate_raises():
    """SIGTERM raises SystemExit in the main process while the export runs, so it cleans up (stops the
    workers, removes its temp folder) instead of dying mid-write. Workers ignore SIGINT: Ctrl-C reaches the
    main process, which stops them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
