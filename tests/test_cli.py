import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from inkdigits import cli, data, idx, load_generator
from inkdigits import images as im
from inkdigits.errors import InkdigitsError


@pytest.fixture
def weights(tiny_weights):
    return tiny_weights


def run(*argv):
    return cli.main([str(a) for a in argv])


def test_help_and_python_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "inkdigits", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("data", "train", "generate", "export", "evaluate"):
        assert command in out.stdout


@pytest.mark.parametrize("command", ["data fetch", "data info", "train", "generate", "export", "export-onnx", "app", "evaluate"])
def test_every_command_prints_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([*command.split(), "--help"])
    assert e.value.code == 0
    assert "usage: inkdigits " + command in capsys.readouterr().out


def test_generate_digit_png(weights, tmp_path, capsys):
    assert run("generate", "--digit", 7, "--count", 16, "--seed", 0, "--weights", weights, "--out", tmp_path / "7.png") == 0
    img = np.asarray(Image.open(tmp_path / "7.png"))
    sevens = load_generator(weights).generate([7] * 16, seed=0)
    # the PNG is those 16 images, 8 a row, each pixel 4x4 (--scale 4 is the default)
    np.testing.assert_array_equal(img[::4, ::4], im.grid(sevens, ncols=8))
    assert "seed 0" in capsys.readouterr().out


def test_generate_is_reproducible(weights, tmp_path):
    for name in ("a", "b"):
        run("generate", "--digit", 3, "--seed", 9, "--weights", weights, "--out", tmp_path / f"{name}.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_generate_number_and_style_sheet(weights, tmp_path):
    assert run("generate", "--number", 2026, "--seed", 0, "--weights", weights, "--out", tmp_path / "y.png") == 0
    g = load_generator(weights)
    line, _ = g.write("2026", seed=0)  # the CLI writes what the API composes, scaled
    assert Image.open(tmp_path / "y.png").size == (line.shape[1] * 4, line.shape[0] * 4)
    assert run("generate", "--number", "12/05", "--seed", 0, "--height", "32", "--width", "128", "--scale", 1,
               "--weights", weights, "--out", tmp_path / "c.png") == 0  # fmt: skip
    assert Image.open(tmp_path / "c.png").size == (128, 32)
    assert run("generate", "--style-sheet", "--rows", 3, "--weights", weights, "--out", tmp_path / "h.png") == 0
    assert Image.open(tmp_path / "h.png").size == ((10 * 30 + 2) * 4, (3 * 30 + 2) * 4)


def test_export_npz(weights, tmp_path):
    assert run("export", "--per-class", 5, "--seed", 1, "--weights", weights, "--out", tmp_path / "s.npz") == 0
    with np.load(tmp_path / "s.npz") as f:
        assert f["images"].shape == (50, 28, 28) and f["images"].dtype == np.uint8
        assert f["labels"].dtype == np.uint8 and np.bincount(f["labels"]).tolist() == [5] * 10
        g = load_generator(weights)
        np.testing.assert_array_equal(f["images"], g.generate(np.repeat(np.arange(10), 5), seed=1))  # neatness 0
    wild = tmp_path / "wild.npz"
    assert run("export", "--per-class", 5, "--seed", 1, "--neatness", "-0.5", "--weights", weights, "--out", wild) == 0
    with np.load(wild) as f:
        np.testing.assert_array_equal(f["images"], g.generate(np.repeat(np.arange(10), 5), seed=1, neatness=-0.5))


def test_export_idx_round_trips_through_the_data_loader(weights, tmp_path):
    out = tmp_path / "idx"
    assert run("export", "--per-class", 3, "--format", "idx", "--weights", weights, "--out", out) == 0
    x = idx.read_idx(out / "train-images-idx3-ubyte")
    y = idx.read_idx(out / "train-labels-idx1-ubyte")
    assert x.shape == (30, 28, 28) and y.tolist() == sorted(list(range(10)) * 3)
    # Use it as a dataset (the test split too) through `inkdigits data fetch --from`.
    for key in ("x_test", "y_test"):
        (out / idx.IDX_FILES[key]).write_bytes((out / idx.IDX_FILES[key.replace("test", "train")]).read_bytes())
    assert run("data", "fetch", "--from", out, "--cache-dir", tmp_path / "cache") == 0
    arrays, _ = data.load_cached_arrays(tmp_path / "cache", fetch_if_needed=False)
    np.testing.assert_array_equal(arrays["x_train"], x)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "--digit", "10", "--out", "x.png"], "out of range"),
        (["generate", "--digit", "-1", "--out", "x.png"], "out of range"),
        (["generate", "--digit", "x", "--out", "x.png"], "not a whole number"),
        (["generate", "--digit", "1", "--count", "0", "--out", "x.png"], "out of range"),
        (["generate", "--digit", "1", "--count", "100000", "--out", "x.png"], "out of range"),
        (["generate", "--digit", "1", "--seed", "-5", "--out", "x.png"], "out of range"),
        (["generate", "--number", "12a", "--out", "x.png"], "only digits"),
        (["generate", "--number", "1" * 1000, "--out", "x.png"], "at most 16 digits"),
        (["generate", "--digit", "1", "--out", "x.jpg"], "must be a .png"),
        (["generate", "--digit", "1", "--frobnicate", "--out", "x.png"], "unrecognized arguments"),
        (["generate", "--out", "x.png"], "one of the arguments"),
        (["export", "--per-class", "0", "--out", "s.npz"], "out of range"),
        (["export", "--out", "s.txt"], "writes a .npz"),
        (["train", "--out", "r", "--lr", "-1"], "positive"),
        (["train", "--out", "r", "--lr", "nan"], "positive"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(weights, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    if argv[0] in ("generate", "export") and "--weights" not in argv:
        argv = [*argv, "--weights", str(weights)]
    with pytest.raises(SystemExit) as e:
        raise SystemExit(cli.main(argv))
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob("s.*"))


def test_neatness_scales_the_styles(weights, tmp_path):
    g = load_generator(weights)
    levels = (-1.0, -0.5, 0.0, 0.25, 0.5, 0.75)
    spread = [np.linalg.norm(g.styles(50, seed=1, neatness=n)) for n in levels]
    assert all(a > b > 0 for a, b in zip(spread, spread[1:], strict=False))  # neater: closer to the typical style
    # the same styles scaled by 1 - neatness: below 0 wider than learned (-1: twice the spread)
    np.testing.assert_allclose(g.styles(50, seed=1, neatness=-1.0), 2 * g.styles(50, seed=1), rtol=1e-6)
    typical = g.generate([3] * 4, seed=1, neatness=1.0)
    assert all(np.array_equal(typical[0], im) for im in typical)  # one hand: the mean style
    for bad in (1.5, -1.5):
        with pytest.raises(InkdigitsError, match="neatness must be between -1 and 1"):
            g.generate([3], seed=1, neatness=bad)
    assert run("generate", "--digit", 3, "--neatness", "0.75", "--weights", weights, "--out", tmp_path / "n.png") == 0
    assert run("generate", "--digit", 3, "--neatness", "-0.5", "--weights", weights, "--out", tmp_path / "w.png") == 0
    with pytest.raises(SystemExit) as e:
        run("generate", "--digit", 3, "--neatness", "2", "--weights", weights, "--out", tmp_path / "m.png")
    assert e.value.code == 2 and not (tmp_path / "m.png").exists()


def test_every_config_field_is_a_train_flag_or_marked_not_one():
    from dataclasses import fields

    from inkdigits.config import DataSpec, ModelConfig, TrainConfig, flag

    train_parser = cli.build_parser()._subparsers._group_actions[0].choices["train"]
    options = {o for action in train_parser._actions for o in action.option_strings}
    for cls in (ModelConfig, TrainConfig, DataSpec):
        for f in fields(cls):
            if f.metadata.get("cli"):
                assert flag(f.name, cls) in options, f.name
            else:
                assert f.name in ("num_classes", "image_size") and cls is ModelConfig  # they come from the data
