"""inkdigits: a conditional GAN that writes handwritten digits.

    from inkdigits import load_generator
    g = load_generator()              # models/generator.safetensors
    images = g.generate([2, 0, 2, 6], seed=0)   # (4, 28, 28) uint8, white on black
"""

__version__ = "0.2.0"
__all__ = ["load_generator", "DigitGenerator", "InkdigitsError"]

from .errors import InkdigitsError


def __getattr__(name):
    # Lazy so that `inkdigits --help` and `inkdigits data` don't pay for importing torch.
    if name in ("load_generator", "DigitGenerator"):
        from . import sample

        return getattr(sample, name)
    raise AttributeError(name)
