"""The sampling API that the CLI, the app and the benchmarks all use (files are formats.py's job).

    from inkdigits import load_generator
    g = load_generator()                       # the shipped generator (or $INKDIGITS_WEIGHTS)
    g.generate([7, 7, 7], seed=1)              # (3, 28, 28) uint8, white strokes on black
    s = g.styles(1, seed=5)                    # one handwriting style (a latent vector)
    g.generate(range(10), styles=s)            # that style written as 0..9

Thread-safe: each call uses its own random generator and the network is only read (eval mode, no grad),
so Streamlit can serve many users from one loaded model.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .compose import LAYOUTS, compose, parse_line
from .config import DIGITS, ModelConfig
from .errors import InkdigitsError
from .limits import FRAMES, HEIGHT, IMAGES, NEATNESS, ROWS, SEED, SPACING, WIDTH
from .models import Generator, to_uint8
from .resources import default_weights
from .weights import load_model

BATCH = 1000  # images per forward pass; bounds memory for large exports


def random_seed() -> int:
    return secrets.randbelow(2**31)


def seed_or_random(seed) -> int:
    return random_seed() if seed is None else SEED.check(seed)


def check_classes(classes, num_classes: int, names: list[str] | None = None) -> np.ndarray:
    """Class indices from indices or names (strings are names, integers are indices)."""
    last = num_classes - 1
    if isinstance(classes, (str, bytes)):
        classes = [classes]  # one class by name
    try:
        items = list(classes)
    except TypeError:
        raise InkdigitsError(f"classes must be a sequence of class indices 0-{last} or names") from None
    IMAGES.check(len(items))
    if names is not None and any(isinstance(c, str) for c in items):
        unknown = [c for c in items if not isinstance(c, str) or c not in names]
        if unknown:
            raise InkdigitsError(f"{unknown[0]!r} is not a class of this model (its classes: {', '.join(names)})")
        items = [names.index(c) for c in items]
    try:
        arr = np.asarray(items)
    except (ValueError, TypeError):  # ragged or odd items
        arr = np.asarray([], dtype=object)
    if len(items) and (arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer) or arr.ndim != 1):
        raise InkdigitsError(f"classes must be a sequence of class indices 0-{last} or names")
    if arr.size and (arr.min() < 0 or arr.max() > last):
        raise InkdigitsError(f"class indices must be 0-{last}, got {int(arr.min())}..{int(arr.max())}")
    return arr.astype(np.int64)


class DigitGenerator:
    """A loaded generator (EMA weights) and the ways to draw with it."""

    def __init__(self, net: Generator, config: ModelConfig, path: Path | None = None, info: dict | None = None):
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.config = config
        self.path = Path(path) if path else None
        self.info = info or {}
        # The class names (the sidecar's; MNIST's digits '0'..'9' for weights that predate names), read once:
        # every generate call checks its classes against them.
        names = self.info.get("classes")
        self.classes: list[str] = list(names) if names else [str(i) for i in range(config.num_classes)]
        self.is_digits = self.classes == DIGITS

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def _check(self, classes) -> np.ndarray:
        return check_classes(classes, self.num_classes, self.classes)

    def parse(self, text: str) -> list[int]:
        """The class indices ``write`` would draw for ``text`` (separators left out); raises InkdigitsError."""
        return parse_line(text, self.classes)[1]

    def styles(self, n: int, seed: int | None = None, neatness: float = NEATNESS.default) -> np.ndarray:
        """``n`` handwriting styles (latent vectors), reproducible from ``seed``.

        ``neatness`` in [-1, 1] scales them by ``1 - neatness``: above 0 toward the mean style (the truncation
        trick), 1 the single most typical hand; 0 is the full variety the model learned; below 0 wider than it
        (wilder, less legible hands). benchmarks/neatness.py measures the trade."""
        n, neatness = IMAGES.check(n), NEATNESS.check(neatness)
        gen = torch.Generator().manual_seed(seed_or_random(seed))
        return (torch.randn(n, self.latent_dim, generator=gen) * (1.0 - neatness)).numpy()

    @torch.inference_mode()
    def _draw(self, z: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        out = [to_uint8(self.net(z[i : i + BATCH], y[i : i + BATCH])) for i in range(0, len(z), BATCH)]
        size = self.config.image_size
        return torch.cat(out).numpy() if out else np.zeros((0, size, size), np.uint8)

    def generate(self, digits: Sequence[int | str], seed: int | None = None, styles=None,
                 neatness: float = NEATNESS.default) -> np.ndarray:  # fmt: skip
        """Draw each class in ``digits`` (indices, or names such as "A"); returns uint8 (N, S, S), white on black.

        ``styles``: optional latent vectors, (N, latent_dim) or one (latent_dim,) for all; otherwise drawn
        from ``seed`` (a fresh random seed when None) with ``neatness`` (see styles). The same seed gives the
        same images.
        """
        y = self._check(digits)
        if styles is None:
            z = torch.from_numpy(self.styles(len(y), seed, neatness))
        else:
            try:
                with np.errstate(over="ignore"):  # values beyond float32 become inf, refused below
                    z = torch.as_tensor(np.asarray(styles, dtype=np.float32))
            except (ValueError, TypeError, OverflowError):
                raise InkdigitsError(f"styles must be an array of numbers, got {styles!r:.40}") from None
            if not torch.isfinite(z).all():
                raise InkdigitsError("styles must be finite numbers (no NaN or infinity)")
            if z.ndim == 1:
                z = z.expand(len(y), -1)
            if z.shape != (len(y), self.latent_dim):
                raise InkdigitsError(f"styles must have shape ({len(y)}, {self.latent_dim}), got {tuple(z.shape)}")
        return self._draw(z.contiguous(), torch.from_numpy(y))

    def write(self, text: str, seed: int | None = None, new_hand_per_digit: bool = False, spacing: float = SPACING.default,
              height: int | None = None, width: int | None = None, neatness: float = NEATNESS.default,
              layout: str = "plain"):  # fmt: skip
        """``text`` written as one line by one hand (compose.py): digits (or one-character class names) and the
        separators ``- . / :`` and space. Returns (image uint8 (H, W), boxes [(x0, y0, x1, y1, char), ...]).

        The same seed gives the same image. ``new_hand_per_digit``: a new style for every glyph (the layout
        stays one hand's); ``spacing`` scales the gaps; ``height``/``width``: a fixed canvas to fit into;
        ``layout``: "plain" (one tidy hand, centred) or "varied" (sizes, strokes, gaps, slant and place on the canvas
        as varied as real numbers: what OCR training sets want; compose.py)."""
        if layout not in LAYOUTS:
            raise InkdigitsError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r:.40}")
        spacing = SPACING.check(spacing)
        height, width = (None if v is None else limit.check(v) for v, limit in ((height, HEIGHT), (width, WIDTH)))
        if width is not None and height is None:
            raise InkdigitsError("width needs height (a fixed canvas has both)")
        chars, classes = parse_line(text, self.classes)
        seed = seed_or_random(seed)
        styles = self.styles(len(classes) if new_hand_per_digit else 1, seed, neatness)
        glyphs = self.generate(classes, styles=styles if new_hand_per_digit else styles[0]) if classes else []
        return compose(list(glyphs), chars, np.random.default_rng(seed), spacing=spacing, height=height, width=width,
                       layout=LAYOUTS[layout])  # fmt: skip

    def style_sheet(self, rows: int, seed: int | None = None, neatness: float = NEATNESS.default) -> np.ndarray:
        """``rows`` styles, each written as every class: (rows*K, S, S), row-major."""
        rows = ROWS.check(rows)  # 2.0 is 2 from here on
        styles = np.repeat(self.styles(rows, seed, neatness), self.num_classes, axis=0)
        return self.generate(np.tile(np.arange(self.num_classes), rows), styles=styles)

    def morph(self, digit_a: int, digit_b: int, frames: int = FRAMES.default, seed: int | None = None,
              same_style: bool = False, neatness: float = NEATNESS.default) -> np.ndarray:  # fmt: skip
        """Frames from (style A, digit A) to (style B, digit B): spherical interpolation of the style and a
        linear blend of the two digits' class conditioning."""
        digit_a, digit_b = (int(c) for c in self._check([digit_a, digit_b]))
        a, b = self.styles(2, seed, neatness)
        if same_style:
            b = a
        t = np.linspace(0.0, 1.0, FRAMES.check(frames))
        z = np.stack([slerp(a, b, ti) for ti in t]).astype(np.float32)
        y = np.zeros((len(t), self.num_classes), np.float32)
        y[:, digit_a] += 1 - t
        y[:, digit_b] += t
        return self._draw(torch.from_numpy(z), torch.from_numpy(y))


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation: Gaussian latents live near a sphere, where straight lines cut inside."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    cos = np.clip(np.dot(a, b) / (na * nb + 1e-12), -1.0, 1.0)
    omega = np.arccos(cos)
    if omega < 1e-6:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def load_generator(path: str | Path | None = None) -> DigitGenerator:
    """Load ``path`` (.safetensors) and its ``.json`` sidecar; clear errors for anything amiss."""
    path = Path(path) if path else default_weights()
    if not path.exists():
        raise InkdigitsError(f"{path}: weights file not found (train one with `inkdigits train --out runs/mine`)")
    net, config, info = load_model(path, "Generator", ModelConfig, Generator)
    names = info.get("classes")
    if names is not None:
        from .datasets import check_class_names

        if not isinstance(names, list) or len(names) != config.num_classes:
            raise InkdigitsError(f"{path.with_suffix('.json')}: 'classes' must be a list of {config.num_classes} names")
        check_class_names(names, str(path.with_suffix(".json")))
    return DigitGenerator(net, config, path, info=info)


# The public names; `Generator` in the package namespace is the sampling object, not the nn.Module.
__all__ = ["load_generator", "DigitGenerator", "random_seed", "default_weights"]
