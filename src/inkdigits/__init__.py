"""inkdigits: a conditional GAN that writes handwritten digits.

    from inkdigits import load_generator
    g = load_generator()                               # the shipped generator (package data)
    images = g.generate([2, 0, 2, 6], seed=0)          # (4, 28, 28) uint8, white on black
    image, boxes = g.write("555-0100", seed=0)         # a number as one hand writes it, with boxes
    neat = g.generate([7] * 8, seed=0, neatness=0.5)   # more typical, less varied hands

Training: ``inkdigits.train.train`` (the loop) over ``inkdigits.gan.ConditionalGAN`` (the mathematics), with
defaults in ``inkdigits.config``; your own images through ``inkdigits.datasets``.
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
