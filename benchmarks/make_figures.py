"""The README's and model card's figures from the shipped weights: the sample grid (10 rows, digits 0-9, x 10
styles) and a written line (`g.write("555-0100  12/05/2026", seed=4)`).

    python benchmarks/make_figures.py [--weights models/generator.safetensors] [--seed 0] [--out docs/samples.png]
"""

import argparse
from pathlib import Path

import numpy as np

from inkdigits import images as im
from inkdigits import load_generator


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="docs/samples.png")
    p.add_argument("--dry-run", action="store_true", help="write the grid to a temporary file instead")
    args = p.parse_args()
    if args.dry_run:
        import tempfile

        args.out = str(Path(tempfile.mkdtemp(prefix="figures-")) / "samples.png")
    g = load_generator(args.weights)
    # Columns are styles: the same latent vector in every row, so a column reads as one writer.
    styles = np.tile(g.styles(10, seed=args.seed), (10, 1))
    batch = g.generate(np.repeat(np.arange(10), 10), styles=styles)
    im.save_png(im.grid(batch, ncols=10), args.out, scale=3)
    number = Path(args.out).with_name("number.png")
    im.save_png(g.write("555-0100  12/05/2026", seed=4)[0], number, scale=3)
    print(f"wrote {args.out} and {number} ({g.path}, seed {args.seed})")


if __name__ == "__main__":
    main()
