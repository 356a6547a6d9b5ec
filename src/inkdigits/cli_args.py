"""Argument types for the ``inkdigits`` command: bounded numbers, one-line errors, and the train flags derived
from the config dataclasses (config.py), so a new config field cannot be forgotten on the command line."""

from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields, replace

from .compose import LAYOUTS
from .config import DataSpec, ModelConfig, TrainConfig, cli_fields, flag
from .errors import InkdigitsError
from .limits import HEIGHT, NEATNESS, NUMBERS_NEATNESS, SPACING, WIDTH, Limit
from .limits import SEED as SEED_LIMIT
from .numbers import HANDS, LAYOUT_CHOICES, PER_DIGIT_SHARE

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (no usage block) and exit code 2."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def int_range(lo: int, hi: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < lo or (hi is not None and value > hi):
            bound = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"{value} is out of range ({bound})")
        return value

    return parse


def float_range(lo: float | None = None, hi: float | None = None, positive: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if positive and not (0 < value < float("inf")):
            raise argparse.ArgumentTypeError(f"{text} must be a positive, finite number")
        if value != value or (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{text} is out of range ({lo}..{hi})")
        return value

    return parse


positive_float = float_range(positive=True)


def add_config_flags(parser, cls) -> None:
    """One flag per field of a config dataclass (config.py), typed and bounded by the field's metadata.

    Unset flags stay None, so the train command knows which ones were given (and a resume can check them)."""
    for f in cli_fields(cls):
        m = f.metadata
        default = f.default if f.default is not MISSING else None
        annotation = str(f.type)  # e.g. "int | None" (annotations are strings here)
        kind = next((k for k in (bool, float, str) if k.__name__ in annotation), int)
        # argparse %-formats help strings, so a literal "%" in the metadata must be escaped
        kw = {"help": f"{m['help']} (default {default})".replace("%", "%%")}
        if m["choices"]:
            kw["choices"] = m["choices"]
        elif kind is bool:
            kw.update(action="store_const", const=True)
        elif kind is int:
            kw["type"] = int_range(m["lo"] or 0, m["hi"])
        elif kind is float:
            kw["type"] = float_range(m["lo"], m["hi"], m["positive"])
        parser.add_argument(flag(f.name, cls), dest=f.name, **kw)


SEED = int_range(SEED_LIMIT.lo, SEED_LIMIT.hi)


def add_limit_flag(parser, limit: Limit, help: str | None = None, default=MISSING) -> None:
    """``--NAME`` bounded, defaulted and described by the sampling API's limit (limits.py); ``default``
    overrides the limit's own (the export's neatness)."""
    kind = int_range(limit.lo, limit.hi) if limit.integer else float_range(limit.lo, limit.hi)
    default = limit.default if default is MISSING else default
    said = f" (default {default})" if default is not None else ""
    parser.add_argument(flag(limit.name), type=kind, default=default, help=(help or limit.what) + said)


def given(args, cls) -> dict:
    """The fields of config class ``cls`` that were given on the command line."""
    return {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None}


def train_overrides(args) -> dict:
    """The model and training fields given on the command line (``--lr`` sets both learning rates)."""
    lr = {"lr_g": args.lr, "lr_d": args.lr} if getattr(args, "lr", None) is not None else {}
    return {**lr, **given(args, ModelConfig), **given(args, TrainConfig)}


def data_spec(args, base=None):
    """The DataSpec the command line describes (fields not given keep ``base``'s values, or the defaults)."""
    return replace(base or DataSpec(), **given(args, DataSpec))


def given_flags(args, *classes) -> list[str]:
    """The given fields of ``classes`` as command-line text (``--data X``, ``--transpose``, ...)."""
    return [flag(k, cls) if v is True else f"{flag(k, cls)} {v}" for cls in classes for k, v in given(args, cls).items()]


def train_command(args) -> str:
    """The command that made (or resumed) a run, rebuilt from the parsed arguments."""
    parts = ["inkdigits train", f"--out {args.out}"] + (["--resume"] if args.resume else [])
    if args.lr is not None:
        parts.append(f"--lr {args.lr}")
    parts += given_flags(args, DataSpec, ModelConfig, TrainConfig)
    parts += [f"{flag(k)} {getattr(args, k)}" for k in ("threads", "classifier", "minutes") if getattr(args, k) is not None]
    return " ".join(parts)


def add_layout_flags(parser, dataset: bool = False) -> None:
    """How a line is laid out (compose.py), for generate --number and (``dataset``) export --numbers, whose
    defaults are as varied as real numbers (measured in benchmarks/ocr_numbers.py)."""
    if dataset:
        hands = parser.add_mutually_exclusive_group()
        hands.add_argument("--hands", choices=HANDS, default=HANDS[0],
                           help=f"--numbers: one hand per number, a new hand per digit, or mixed ({PER_DIGIT_SHARE * 100:.0f}%% "
                                f"per digit; default {HANDS[0]})")  # fmt: skip
        hands.add_argument("--new-hand-per-digit", dest="hands", action="store_const", const="per-digit",
                           help="the same as --hands per-digit")  # fmt: skip
    else:
        parser.add_argument("--new-hand-per-digit", action="store_true", help="a new style for every digit")
    default = LAYOUT_CHOICES[0] if dataset else "plain"
    parser.add_argument("--layout", choices=LAYOUT_CHOICES if dataset else list(LAYOUTS), default=default,
                        help="plain: one tidy hand, centred; varied: sizes, strokes, gaps, slant and place on the "
                             "canvas as varied as real numbers" + ("; mixed: half of each" if dataset else "")
                             + f" (default {default})")  # fmt: skip
    if dataset:  # None: each kind of export's own default, set in cmd_export
        add_limit_flag(parser, NEATNESS, f"{NEATNESS.what} (default {NEATNESS.default}; with --numbers "
                                         f"{NUMBERS_NEATNESS}: recognisers trained on wider hands read real numbers "
                                         "better)", default=None)
    else:
        add_limit_flag(parser, NEATNESS)
    for limit in (SPACING, HEIGHT, WIDTH):
        add_limit_flag(parser, limit)


def layout(args) -> dict:
    if args.width and not args.height:
        raise InkdigitsError("--width needs --height (a fixed canvas has both)")
    chosen = {"spacing": args.spacing, "height": args.height, "width": args.width, "neatness": args.neatness,
              "layout": args.layout}  # fmt: skip
    if hasattr(args, "new_hand_per_digit"):
        chosen["new_hand_per_digit"] = args.new_hand_per_digit
    return chosen
