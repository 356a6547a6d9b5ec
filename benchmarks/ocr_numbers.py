"""Train on synthetic numbers, test on real ones: is the composer's output worth training an OCR model on?

A small sequence recogniser (CNN + bidirectional GRU + CTC) is trained twice with the same budget:
  (a) on numbers written by inkdigits (`g.write`: generated digits, one hand per number), and
  (b) on numbers composed the same way from real MNIST *training* digits (what MNIST-sequence generators do),
and both are tested on numbers composed from real MNIST *test* digits, which neither saw. Reports sequence
accuracy (the whole number right) and character error rate.

    python benchmarks/ocr_numbers.py [--train 10000] [--test 2000] [--epochs 8] [--threads 2]
"""

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inkdigits import datasets, load_generator
from inkdigits.compose import compose
from inkdigits.numbers import item_seed, texts

HEIGHT, WIDTH = 32, 192  # a fixed canvas, as OCR pipelines use


def written(g, n: int, seed: int):
    """(images (n, H, W) uint8, texts) written by the generator, one hand per number."""
    labels = texts(n, seed, (4, 10))
    images = [g.write(t, seed=item_seed(seed, i), height=HEIGHT, width=WIDTH)[0] for i, t in enumerate(labels)]
    return np.stack(images), labels


def composed_from_real(x: np.ndarray, y: np.ndarray, n: int, seed: int):
    """The same composer and hand distribution, with real digit images picked at random for each digit."""
    by_digit = [np.flatnonzero(y == d) for d in range(10)]
    labels, rng = texts(n, seed, (4, 10)), np.random.default_rng([seed, 2])
    images = []
    for i, t in enumerate(labels):
        glyphs = [x[rng.choice(by_digit[int(ch)])] for ch in t]
        images.append(compose(glyphs, t, np.random.default_rng(item_seed(seed, i)), height=HEIGHT, width=WIDTH)[0])
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


def train_and_test(images, labels, test_images, test_labels, epochs: int, seed: int = 0):
    torch.manual_seed(seed)
    model, gen = Recogniser(), torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * -(-len(images) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    x = to_input(images)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(64):
            targets, lengths = encode([labels[i] for i in idx.tolist()])
            log_probs = model(x[idx])
            loss = F.ctc_loss(log_probs, targets, torch.full((len(idx),), log_probs.shape[0]), lengths, zero_infinity=True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        predicted = [p for chunk in to_input(test_images).split(500) for p in decode(model(chunk))]
    exact = np.mean([p == t for p, t in zip(predicted, test_labels, strict=True)])
    cer = sum(edit_distance(p, t) for p, t in zip(predicted, test_labels, strict=True)) / sum(map(len, test_labels))
    return float(exact), float(cer)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--train", type=int, default=10000)
    p.add_argument("--test", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--weights")
    p.add_argument("--dry-run", action="store_true", help="64 numbers each, one epoch")
    args = p.parse_args()
    if args.dry_run:
        args.train, args.test, args.epochs = 64, 32, 1
    torch.set_num_threads(args.threads)
    g = load_generator(args.weights)
    mnist = datasets.load_mnist()
    t0 = time.perf_counter()
    sets = {
        "inkdigits numbers (generated digits)": written(g, args.train, seed=1),
        "numbers composed from real MNIST train digits": composed_from_real(mnist.x_train.numpy(), mnist.y_train.numpy(),
                                                                             args.train, seed=1),
    }  # fmt: skip
    test_images, test_labels = composed_from_real(mnist.x_test.numpy(), mnist.y_test.numpy(), args.test, seed=2)
    print(f"data: {args.train} training numbers per row (4-10 digits, {HEIGHT}x{WIDTH}), {args.test} test numbers "
          f"from MNIST test digits; built in {time.perf_counter() - t0:.0f} s\n")  # fmt: skip
    print("| trained on | epochs | sequence accuracy | character error rate | minutes |")
    print("|---|---:|---:|---:|---:|")
    for name, (images, labels) in sets.items():
        t0 = time.perf_counter()
        exact, cer = train_and_test(images, labels, test_images, test_labels, args.epochs)
        print(f"| {name} | {args.epochs} | {exact:.2%} | {cer:.2%} | {(time.perf_counter() - t0) / 60:.1f} |", flush=True)


if __name__ == "__main__":
    main()
