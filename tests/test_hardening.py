"""Nothing a user types, links or hands in shows a traceback or leaves debris (issue 19).

Property-based checks of the share-link reader, the seed parser and the sampling API's arguments, and a
table of bad command lines: each is one line on stderr, exit 2, and no new file or folder.
"""

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import write_tiny_generator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from inkdigits import cli, load_generator
from inkdigits.errors import InkdigitsError
from inkdigits.limits import MAX_SEED, NEATNESS
from inkdigits.share_link import TABS, parse_seed_text, read_link, readers

APP = str(Path(__file__).resolve().parents[1] / "app.py")
DIGITS = [str(d) for d in range(10)]
KEYS = sorted({key for tab in readers(DIGITS).values() for key in tab} | {"tab"})
ANY_TEXT = st.text(max_size=30) | st.sampled_from(["7", "-1", "nan", "inf", "1e400", "9" * 5000, "²", "true", "2.5"])


# --------------------------------------------------------------------------- share links and seeds


@given(st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), ANY_TEXT, max_size=8))
@settings(max_examples=300, deadline=None)
def test_any_link_reads_to_values_every_widget_accepts(params):
    tab, values, notes = read_link(params, DIGITS)
    assert tab in (*TABS, None)
    allowed = readers(DIGITS)[tab] if tab else {}
    assert set(values) <= set(allowed)
    for key, value in values.items():
        if key in ("neatness",):
            assert NEATNESS.lo <= value <= NEATNESS.hi
        elif key == "count":
            assert 1 <= value <= 64 and isinstance(value, int)
        elif key in ("rows", "frames"):
            assert isinstance(value, int) and value >= 1
        elif key.startswith("seed-"):
            assert parse_seed_text(value) is None or 0 <= parse_seed_text(value) <= MAX_SEED
    assert all(isinstance(n, str) and "\n" not in n for n in notes)


def test_out_of_range_link_values_are_pulled_in_with_a_note():
    tab, values, notes = read_link({"tab": "styles", "rows": "500", "neatness": "7"}, DIGITS)
    assert (tab, values) == ("styles", {"rows": 8, "neatness": 1.0})
    assert any("rows 500 is out of range" in n for n in notes) and any("neatness 7" in n for n in notes)


@given(st.text(max_size=40) | st.integers(min_value=-5, max_value=2**70).map(str))
@settings(max_examples=300, deadline=None)
def test_seed_parser_gives_a_seed_or_one_message(text):
    try:
        seed = parse_seed_text(text)
    except ValueError as e:
        assert "seed must be a whole number" in str(e)
    else:
        assert seed is None or 0 <= seed <= MAX_SEED


@pytest.fixture
def app_env(measured_weights, monkeypatch):
    monkeypatch.setenv("INKDIGITS_WEIGHTS", str(measured_weights))


@pytest.mark.parametrize("params", [
    {"tab": "digit", "neatness": "7"}, {"tab": "digit", "neatness": "-7"}, {"tab": "morph", "frames": "99"},
    {"tab": "styles", "rows": "0"}, {"tab": "number", "spacing": "9"}, {"tab": "digit", "neatness": "nan"},
    {"tab": "digit", "seed-digit": "9" * 5000}, {"tab": "number", "number-hands": "both"},
    {"tab": "morph", "morph-same": "maybe"},
])  # fmt: skip
def test_app_opens_any_link_without_an_exception(app_env, params):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(params)
    at.run()
    assert not at.exception and not at.error
    assert len(at.tabs) == 4
    assert "This link had values" in " ".join(c.value for c in at.caption)


@given(st.dictionaries(st.sampled_from(KEYS), ANY_TEXT, max_size=5).map(lambda d: {"tab": "digit", **d}))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_app_with_random_link_values(app_env, params):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(params)
    at.run()
    assert not at.exception


@pytest.mark.parametrize("typed", ["99999999999999999999", "²", "-3", "1.5"])
def test_a_typed_bad_seed_is_the_inline_message(app_env, typed):
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="seed-digit").set_value(typed)
    at.button(key="go-digit").click().run()
    assert not at.exception
    assert [e.value for e in at.error] and "seed must be a whole number" in at.error[0].value


def test_an_error_clears_the_tab_and_its_address(app_env):
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.button(key="go-number").click().run()
    assert at.session_state["results"]["number"] and at.query_params["tab"] == "number"
    at.text_input(key="number").set_value("12a").run()
    at.button(key="go-number").click().run()
    assert "number" not in at.session_state["results"] and "tab" not in at.query_params
    at.button(key="go-digit").click().run()  # the Digit tab behaves the same way
    at.text_input(key="seed-digit").set_value("x")
    at.button(key="go-digit").click().run()
    assert "digit" not in at.session_state["results"] and "seed must be" in at.error[-1].value


def test_neatness_one_says_every_image_is_the_same(app_env):
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.sidebar.slider(key="neatness").set_value(1.0)
    at.button(key="go-digit").click().run()
    images = at.session_state["results"]["digit"]["images"]
    assert all(np.array_equal(images[0], im) for im in images)
    assert any("these images are all the same" in i.value for i in at.info)


def test_morph_caption_says_when_the_style_is_kept(app_env):
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.checkbox(key="morph-same").check()
    at.button(key="go-morph").click().run()
    assert at.session_state["results"]["morph"]["caption"] == "digit interpolated, one style throughout"


def test_number_download_has_boxes_and_classes(app_env):
    import io

    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="number").set_value("12/05")
    at.button(key="go-number").click().run()
    res = at.session_state["results"]["number"]
    with np.load(io.BytesIO(res["npz"]), allow_pickle=False) as f:
        assert list(f["labels"]) == ["12/05"] and list(f["classes"]) == DIGITS
        assert "".join(f["box_chars"][0]) == "12/05"
        assert [tuple(b) for b in f["boxes"][0]] == [tuple(b[:4]) for b in res["boxes"]]


# --------------------------------------------------------------------------- the sampling API


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_generator(write_tiny_generator(tmp_path_factory.mktemp("g") / "g.safetensors"))


ODD = (st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
       | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5)
       | st.lists(st.integers(-3, 12), max_size=4))  # fmt: skip
CALLS = {
    "generate-seed": lambda g, v: g.generate([1, 2], seed=v),
    "generate-digits": lambda g, v: g.generate(v, seed=0),
    "generate-neatness": lambda g, v: g.generate([1], seed=0, neatness=v),
    "generate-styles": lambda g, v: g.generate([1], styles=v),
    "styles-n": lambda g, v: g.styles(v, seed=0),
    "write-text": lambda g, v: g.write(v, seed=0),
    "write-height": lambda g, v: g.write("12", seed=0, height=v),
    "write-width": lambda g, v: g.write("12", seed=0, height=32, width=v),
    "write-spacing": lambda g, v: g.write("12", seed=0, spacing=v),
    "style_sheet-rows": lambda g, v: g.style_sheet(v, seed=0),
    "morph-frames": lambda g, v: g.morph(1, 2, frames=v, seed=0),
    "morph-class": lambda g, v: g.morph(v, 2, seed=0),
}


@pytest.mark.parametrize("call", sorted(CALLS))
@given(value=ODD)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_api_arguments_give_a_result_or_an_inkdigits_error(tiny, call, value):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        out = CALLS[call](tiny, value)
    except InkdigitsError as e:
        assert "\n" not in str(e)
    else:
        array = out[0] if isinstance(out, tuple) else out
        assert array.dtype == (np.float32 if call == "styles-n" else np.uint8) and array.nbytes < 64 * 2**20
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 512 * 2**10  # KB: under 512 MB more


@pytest.mark.parametrize("call, message", [
    (lambda g: g.generate([1], seed=2**70), "seed must be between 0 and 2\\*\\*63 - 1"),
    (lambda g: g.generate([1], seed="a"), "seed must be a whole number"),
    (lambda g: g.generate([1], styles="x"), "styles must be an array of numbers"),
    (lambda g: g.styles(-1), "images must be between 0 and"),
    (lambda g: g.write("12", height=-5), "height must be between 8 and 512"),
    (lambda g: g.write("12", height=100000), "height must be between 8 and 512"),
    (lambda g: g.write("12", spacing=float("nan")), "spacing must be between 0 and 4"),
    (lambda g: g.write("12", spacing=1e6), "spacing must be between 0 and 4"),
    (lambda g: g.morph(1, 2, frames=-3), "frames must be between 2 and 64"),
])  # fmt: skip
def test_api_refusals_name_the_argument(tiny, call, message):
    with pytest.raises(InkdigitsError, match=message):
        call(tiny)


def test_whole_floats_count_as_whole_numbers(tiny):
    """Found by the property test above: style_sheet(2.0) passed the check, then np.tile refused the float."""
    assert tiny.style_sheet(2.0, seed=0).shape == tiny.style_sheet(2, seed=0).shape
    assert len(tiny.morph(1, 2, frames=3.0, seed=0)) == 3


# --------------------------------------------------------------------------- the command line


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def bad_inputs(root):
    """(argv, what the one line must say) for inputs that must be refused; writes the files they name."""
    weights = write_tiny_generator(root / "w" / "g.safetensors")
    wrong_type = root / "wt" / "g.safetensors"
    write_tiny_generator(wrong_type)
    sidecar = json.loads(wrong_type.with_suffix(".json").read_text())
    sidecar["model"]["latent_dim"] = "abc"
    wrong_type.with_suffix(".json").write_text(json.dumps(sidecar))
    bad_names = root / "bn" / "g.safetensors"
    write_tiny_generator(bad_names, classes=["0", "0", *DIGITS[2:]])
    shapes = root / "shapes"
    for name in ("a", "b"):
        (shapes / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((28, 28), 40 * i, np.uint8)).save(shapes / name / f"{i}.png")
    dots = root / "dots"
    for name in ("a", "..."):
        (dots / name).mkdir(parents=True)
        Image.new("L", (28, 28)).save(dots / name / "0.png")
    bomb = root / "bomb"
    (bomb / "a").mkdir(parents=True)
    (bomb / "b").mkdir(parents=True)
    Image.new("1", (20000, 20000)).save(bomb / "a" / "huge.png")  # a 30 kB file of 400 megapixels
    Image.new("L", (28, 28)).save(bomb / "b" / "0.png")
    zero = root / "zero.npz"
    np.savez(zero, images=np.zeros((10, 0, 0), np.uint8), labels=np.arange(10) % 2)
    comma = root / "comma"
    for name in ("a,b", "c"):
        (comma / name).mkdir(parents=True)
        Image.new("L", (28, 28)).save(comma / name / "0.png")
    noise = root / "noise.npz"
    noise.write_bytes(os.urandom(4096))
    crafted = root / "crafted"
    crafted.mkdir()
    import torch

    torch.save({"model": object}, crafted / "checkpoint.pt")
    w = str(weights)
    return [
        (["generate", "--digit", "1", "--weights", str(wrong_type), "--out", str(root / "o.png")], "latent_dim='abc'"),
        (["generate", "--digit", "1", "--weights", str(bad_names), "--out", str(root / "o.png")], "distinct"),
        (["export", "--numbers", "3", "--pattern", "", "--weights", w, "--out", str(root / "n")], "--pattern ''"),
        (["export", "--numbers", "3", "--length", "4-", "--weights", w, "--out", str(root / "n")], "--length '4-'"),
        (["export", "--numbers", "3", "--format", "png", "--weights", w, "--out", str(root / "n.npz")], "a .npz name"),
        (["train", "--data", str(shapes), "--classes", "", "--out", str(root / "r")], "--classes is empty"),
        (["train", "--data", str(dots), "--out", str(root / "r")], "'...' cannot be a class name"),
        (["train", "--data", str(bomb), "--out", str(root / "r")], "is too large for a training image"),
        (["train", "--data", str(zero), "--out", str(root / "r")], "images of 8 to 1024 pixels"),
        (["train", "--data", str(comma), "--out", str(root / "r")], "'a,b' is not usable"),
        (["train", "--data", str(noise), "--out", str(root / "r")], "not an .npz file"),
        (["train", "--data", str(shapes), "--minutes", "0", "--out", str(root / "r")], "--minutes"),
        (["train", "--resume", "--out", str(crafted)], "not a plain tensor checkpoint"),
        (["evaluate", "--samples", str(noise)], "not an .npz file"),
        (["evaluate", "train-classifier", "--data", str(shapes), "--out", str(zero / "c.safetensors")], "is a file"),
    ]


def test_bad_command_lines_are_one_line_exit_2_and_leave_nothing(tmp_path, data_dir, capsys):
    cases = bad_inputs(tmp_path)
    before = files_under(tmp_path)
    for argv, message in cases:
        try:
            code = cli.main(argv)
        except SystemExit as e:  # argparse's own refusals
            code = e.code
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert len(err.strip().splitlines()) == 1 and message in err, (argv, err)
        assert "Traceback" not in err
        assert files_under(tmp_path) == before, argv


def test_sixteen_bit_pngs_are_scaled_not_clipped(tmp_path):
    from inkdigits import datasets

    for name, value in (("a", 1000), ("b", 30000)):
        (tmp_path / name).mkdir()
        Image.fromarray(np.full((28, 28), value, np.uint16)).save(tmp_path / name / "0.png")
    arrays, _ = datasets.read_class_folders(tmp_path)
    assert sorted(np.unique(arrays["x_train"]).tolist()) == [round(1000 / 65535 * 255), round(30000 / 65535 * 255)]


def test_numbers_npz_named_as_a_file_is_that_file(tmp_path, capsys):
    weights = write_tiny_generator(tmp_path / "g.safetensors")
    out = tmp_path / "phones.npz"
    assert cli.main(["export", "--numbers", "5", "--pattern", "ddd-dd", "--weights", str(weights), "--out", str(out),
                     "--workers", "1"]) == 0  # fmt: skip
    assert out.is_file() and files_under(tmp_path) == sorted(["g.safetensors", "g.json", "phones.npz"])
    with np.load(out, allow_pickle=False) as f:
        assert len(f["labels"]) == 5 and f["boxes"].shape == (5, 6, 4)  # 5 digits and the dash have boxes
        assert ["".join(c) for c in f["box_chars"]] == [t for t in f["labels"]]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_export_leaves_no_temp_folder_after_a_rerun(tmp_path, sig):
    weights = write_tiny_generator(tmp_path / "g.safetensors")
    out = tmp_path / "numbers"
    argv = [sys.executable, "-m", "inkdigits", "export", "--numbers", "200000", "--weights", str(weights),
            "--out", str(out), "--workers", "2"]  # fmt: skip
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".numbers.*")) or not list(next(tmp_path.glob(".numbers.*")).glob("*.png")):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
        time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Traceback" not in err and "BrokenPipeError" not in err, err
    if sig == signal.SIGTERM:
        assert not list(tmp_path.glob(".numbers.*"))  # cleaned up by the export itself
    rerun = subprocess.run([*argv[:5], "3", *argv[6:]], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert not list(tmp_path.glob(".numbers.*")) and len(list(out.glob("*.png"))) == 3


@pytest.mark.parametrize("fmt", ["png", "npz"])
def test_a_full_disk_during_a_numbers_export_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch, fmt):
    import errno
    from pathlib import Path as P

    weights = write_tiny_generator(tmp_path / "g.safetensors")
    before = files_under(tmp_path)
    real = P.write_bytes

    def full(self, data):
        if self.parent.name.startswith(".numbers."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(P, "write_bytes", full)
    code = cli.main(["export", "--numbers", "5", "--format", fmt, "--weights", str(weights), "--workers", "1",
                     "--out", str(tmp_path / "numbers")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "No space left on device" in err
    assert files_under(tmp_path) == before


def test_a_full_disk_during_training_is_one_line_and_keeps_the_checkpoint(tmp_path, data_dir, capsys, monkeypatch):
    import errno

    from conftest import TINY_TRAIN

    from inkdigits import rundir

    calls = []
    real = rundir.RunDir.save_samples

    def fills_up(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path / "samples" / "x.png"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(rundir.RunDir, "save_samples", fills_up)
    argv = ["train", "--out", str(tmp_path / "run"), "--classifier", "none"]
    argv += [f"--{k.replace('_', '-')}={v}" for k, v in {**TINY_TRAIN, "epochs": 2, "eval_every": 5}.items()]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "No space left on device" in err and "the last checkpoint is kept" in err and "--resume" in err
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_a_read_only_classifier_out_fails_before_training(tmp_path, read_only_folder, capsys):
    shapes = tmp_path / "shapes"
    for name in ("a", "b"):
        (shapes / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((28, 28), 40 * i, np.uint8)).save(shapes / name / f"{i}.png")
    started = time.monotonic()
    out = read_only_folder / "c.safetensors"
    assert cli.main(["evaluate", "train-classifier", "--data", str(shapes), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot write there" in err and len(err.strip().splitlines()) == 1
    assert time.monotonic() - started < 5  # refused before any training
