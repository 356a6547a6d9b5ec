"""Train on synthetic numbers, test on real ones: is inkdigits' output worth training an OCR model on?

A small sequence recogniser (CNN + bidirectional GRU + CTC) is trained on each training set with the same
number of optimiser steps and tested on numbers made from real MNIST *test* digits, which no set saw, in three
layouts:
  - inkdigits' own (compose.py's PLAIN layout: one hand's size, gaps and slant, centred);
  - tiles: plain 28-px MNIST tiles side by side, as MNIST-sequence generators make them;
  - independent: a composer written here, apart from compose.py, with its own rules (a size per digit, its own
    gaps and baseline, left-aligned at a random place), so inkdigits cannot have learned its layout.
Every test digit comes from a different writer (a random MNIST test image per digit).

Training sets: inkdigits numbers with one hand per number (PLAIN, the old export), a hand per digit (PLAIN), the
export's defaults (mixed layout, mixed hands), real MNIST *train* digits in inkdigits' layout (PLAIN, and the
export's default layout: only the digit images differ from the defaults row), and the mixing
question: 1,000 real-digit numbers alone, and the same 1,000 plus 10,000 inkdigits numbers. Reports sequence
accuracy (the whole number right) and character error rate per test layout.

    python benchmarks/ocr_numbers.py [--train 10000] [--test 2000] [--epochs 8] [--threads 2] [--rows a,b] [--seed 1]
        [--neatness -0.4]   # inkdigits' numbers' neatness (default: the export's)
"""

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from inkdigits import datasets, load_generator
from inkdigits.compose import INK, LAYOUTS, compose
from inkdigits.limits import NUMBERS_NEATNESS
from inkdigits.numbers import HANDS, LAYOUT_CHOICES, item_layouts, item_seed, number_jobs, texts

HEIGHT, WIDTH = 32, 160  # a fixed canvas, as OCR pipelines use
LENGTH = (4, 8)


def written(g, n: int, seed: int, layout: str = "plain", hands: str = "one", neatness: float = NUMBERS_NEATNESS):
    """(images (n, H, W) uint8, texts) written by the generator, as `export --numbers` writes them."""
    jobs = number_jobs(n, seed, LENGTH, hands=hands, layout=layout)
    canvas = {"height": HEIGHT, "width": WIDTH, "neatness": neatness}
    images = [g.write(t, seed=s, layout=lay, new_hand_per_digit=new, **canvas)[0] for _, t, s, new, lay in jobs]
    return np.stack(images), [t for _, t, *_ in jobs]


def real_glyphs(x: np.ndarray, y: np.ndarray, text: str, rng: np.random.Generator) -> list[np.ndarray]:
    """A random real image of each digit: a different writer for every digit."""
    return [x[rng.choice(np.flatnonzero(y == int(ch)))] for ch in text]


def in_inkdigits_layout(x, y, n: int, seed: int, layout: str = "plain"):
    """Real digits laid out by inkdigits' composer: PLAIN, or any of the export's ``--layout`` choices (each
    number in the layout the export would give it)."""
    labels, rng = texts(n, seed, LENGTH), np.random.default_rng([seed, 2])
    layouts = item_layouts(layout, seed, n)
    images = [compose(real_glyphs(x, y, t, rng), t, np.random.default_rng(item_seed(seed, i)), height=HEIGHT,
                      width=WIDTH, layout=LAYOUTS[layouts[i]])[0] for i, t in enumerate(labels)]  # fmt: skip
    return np.stack(images), labels


def fit_left(line: np.ndarray, rng: np.random.Generator, centred: bool = False) -> np.ndarray:
    """Scale a line to fit the canvas (aspect kept); centred, or at a random place."""
    h, w = line.shape
    factor = min(HEIGHT / h, WIDTH / w)
    new_w, new_h = max(1, int(w * factor)), max(1, int(h * factor))
    small = np.asarray(Image.fromarray(line).resize((new_w, new_h), Image.Resampling.LANCZOS))
    out = np.zeros((HEIGHT, WIDTH), np.uint8)
    ox = (WIDTH - new_w) // 2 if centred else int(rng.integers(0, WIDTH - new_w + 1))
    oy = (HEIGHT - new_h) // 2
    out[oy : oy + new_h, ox : ox + new_w] = small
    return out


def as_tiles(x, y, n: int, seed: int):
    """Plain 28-px MNIST tiles side by side, fitted to the canvas and centred."""
    labels, rng = texts(n, seed, LENGTH), np.random.default_rng([seed, 4])
    images = [fit_left(np.concatenate(real_glyphs(x, y, t, rng), axis=1), rng, centred=True) for t in labels]
    return np.stack(images), labels


def independent_layout(x, y, n: int, seed: int):
    """A layout written apart from compose.py: each digit cropped to its ink, its own height (18-28 px), gaps of
    0-6 px, bottoms on a baseline with +-2 px jitter, no slant; then scaled to fit and left at a random place."""
    labels, rng = texts(n, seed, LENGTH), np.random.default_rng([seed, 5])
    images = []
    for t in labels:
        pieces = []
        for glyph in real_glyphs(x, y, t, rng):
            ys, xs = np.nonzero(glyph > INK)
            crop = glyph[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
            height = int(rng.integers(18, 29))
            width = max(2, round(crop.shape[1] * height / crop.shape[0]))
            pieces.append(np.asarray(Image.fromarray(crop).resize((width, height), Image.Resampling.LANCZOS)))
        gaps = rng.integers(0, 7, len(pieces))
        line = np.zeros((36, sum(p.shape[1] for p in pieces) + int(gaps.sum()) + 4), np.uint8)
        x0 = 2
        for piece, gap in zip(pieces, gaps, strict=True):
            bottom = 32 + int(rng.integers(-2, 3))
            line[bottom - piece.shape[0] : bottom, x0 : x0 + piece.shape[1]] = piece
            x0 += piece.shape[1] + int(gap)
        images.append(fit_left(line, rng))
    return np.stack(images), labels


class Recogniser(nn.Module):
    """CNN over the line, one feature column per 4 px, a bidirectional GRU, 11 outputs (blank + digits)."""

    def __init__(self, width: int = 32, hidden: int = 96):
        super().__init__()

        def block(cin, cout, pool):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.MaxPool2d(pool))  # fmt: skip

        self.cnn = nn.Sequential(block(1, width, 2), block(width, 2 * width, 2), block(2 * width, 2 * width, (2, 1)),
                                 block(2 * width, 2 * width, (4, 1)))  # fmt: skip  # H 32 -> 1, W 192 -> 48
        self.rnn = nn.GRU(2 * width, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, 11)

    def forward(self, x):  # x (N, 1, H, W) -> log-probs (T, N, 11)
        h = self.cnn(x).squeeze(2).transpose(1, 2)
        return F.log_softmax(self.out(self.rnn(h)[0]), -1).transpose(0, 1)


def encode(labels):
    targets = torch.tensor([int(ch) + 1 for t in labels for ch in t])
    return targets, torch.tensor([len(t) for t in labels])


def decode(log_probs) -> list[str]:
    best = log_probs.argmax(-1).transpose(0, 1).tolist()
    out = []
    for seq in best:
        chars, prev = [], 0
        for k in seq:
            if k != prev and k != 0:
                chars.append(str(k - 1))
            prev = k
        out.append("".join(chars))
    return out


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def to_input(images):
    return torch.from_numpy(images).unsqueeze(1).float().div(127.5).sub(1)


def train_recogniser(images, labels, steps: int, seed: int = 0) -> Recogniser:
    """``steps`` optimiser steps of 64 numbers (as many epochs as that takes), one-cycle learning rate."""
    torch.manual_seed(seed)
    model, gen = Recogniser(), torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    x, done = to_input(images), 0
    model.train()
    while done < steps:
        for idx in torch.randperm(len(x), generator=gen).split(64):
            if done == steps:
                break
            targets, lengths = encode([labels[i] for i in idx.tolist()])
            log_probs = model(x[idx])
            loss = F.ctc_loss(log_probs, targets, torch.full((len(idx),), log_probs.shape[0]), lengths, zero_infinity=True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            done += 1
    return model.eval()


@torch.no_grad()
def score(model, test_images, test_labels) -> tuple[float, float]:
    """(sequence accuracy, character error rate)."""
    predicted = [p for chunk in to_input(test_images).split(500) for p in decode(model(chunk))]
    exact = np.mean([p == t for p, t in zip(predicted, test_labels, strict=True)])
    cer = sum(edit_distance(p, t) for p, t in zip(predicted, test_labels, strict=True)) / sum(map(len, test_labels))
    return float(exact), float(cer)


ROWS = {
    "one": "inkdigits, one hand per number, plain layout (the old export)",
    "per-digit": "inkdigits, a hand per digit, plain layout",
    "varied": f"inkdigits, varied layout, {HANDS[0]} hands",
    "default": f"inkdigits, `export --numbers` defaults ({LAYOUT_CHOICES[0]} layout: half varied, half plain; "
               f"{HANDS[0]} hands)",
    "mixed-per-digit": f"inkdigits, {LAYOUT_CHOICES[0]} layout, a hand per digit",
    "real": "real MNIST train digits in inkdigits' layout",
    "real-default": f"real MNIST train digits in the export's default layout ({LAYOUT_CHOICES[0]})",
    "real1k": "1,000 real-digit numbers alone",
    "mixed": "the same 1,000 + 10,000 inkdigits numbers (defaults)",
}


SYNTHETIC = {  # row -> (layout, hands) of its inkdigits numbers
    "one": ("plain", "one"),
    "per-digit": ("plain", "per-digit"),
    "varied": ("varied", HANDS[0]),
    "default": (LAYOUT_CHOICES[0], HANDS[0]),
    "mixed-per-digit": (LAYOUT_CHOICES[0], "per-digit"),
}


def training_set(row: str, g, mnist, n: int, seed: int = 0, neatness: float = NUMBERS_NEATNESS):
    """Row ``row``'s training numbers; ``seed`` 0 is the table in RESULTS.md, others draw other numbers;
    inkdigits' numbers are written at ``neatness``."""
    x, y = mnist.x_train.numpy(), mnist.y_train.numpy()
    s = 100 * seed
    if row in SYNTHETIC:
        layout, hands = SYNTHETIC[row]
        return written(g, n, seed=1 + s, layout=layout, hands=hands, neatness=neatness)
    if row == "real":
        return in_inkdigits_layout(x, y, n, seed=1 + s)
    if row == "real-default":  # the default row's layouts with real digits: only the digit images differ
        return in_inkdigits_layout(x, y, n, seed=1 + s, layout=LAYOUT_CHOICES[0])
    few = in_inkdigits_layout(x, y, max(1, n // 10), seed=3 + s)
    if row == "real1k":
        return few
    synthetic = written(g, n, 1 + s, *SYNTHETIC["default"], neatness=neatness)
    return np.concatenate([few[0], synthetic[0]]), few[1] + synthetic[1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--train", type=int, default=10000, help="numbers per synthetic set (the small real set: a tenth)")
    p.add_argument("--test", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=8, help="of the full-size set; every row gets as many steps")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    p.add_argument("--weights")
    p.add_argument("--seed", type=int, default=0, help="of the training numbers and the recogniser (the test set stays)")
    p.add_argument("--neatness", type=float, default=NUMBERS_NEATNESS,
                   help=f"of inkdigits' numbers (default {NUMBERS_NEATNESS}, the export's; below 0: wider hands)")
    p.add_argument("--dry-run", action="store_true", help="64 numbers each, one epoch")
    args = p.parse_args()
    if args.dry_run:
        args.train, args.test, args.epochs = 64, 32, 1
    torch.set_num_threads(args.threads)
    g = load_generator(args.weights)
    mnist = datasets.load_mnist()
    xt, yt = mnist.x_test.numpy(), mnist.y_test.numpy()
    tests = {"inkdigits' layout": in_inkdigits_layout(xt, yt, args.test, seed=2),
             "28-px tiles": as_tiles(xt, yt, args.test, seed=2),
             "independent layout": independent_layout(xt, yt, args.test, seed=2)}  # fmt: skip
    steps = args.epochs * -(-args.train // 64)
    print(f"{steps} steps of 64 numbers for every row ({args.epochs} epochs of {args.train}); {LENGTH[0]}-{LENGTH[1]} "
          f"digits on a {HEIGHT}x{WIDTH} canvas; inkdigits' numbers at neatness {args.neatness:g}; tested on "
          f"{args.test} numbers of real MNIST test digits, a writer per digit, in each layout (sequence accuracy / "
          "character error rate)\n")  # fmt: skip
    print("| trained on | " + " | ".join(tests) + " | minutes |")
    print("|---|" + "---:|" * (len(tests) + 1))
    for row in args.rows.split(","):
        t0 = time.perf_counter()
        images, labels = training_set(row, g, mnist, args.train, args.seed, args.neatness)
        model = train_recogniser(images, labels, steps, seed=args.seed)
        cells = [f"{exact:.2%} / {cer:.2%}" for exact, cer in (score(model, *test) for test in tests.values())]
        print(f"| {ROWS[row]} | " + " | ".join(cells) + f" | {(time.perf_counter() - t0) / 60:.1f} |", flush=True)


if __name__ == "__main__":
    main()
