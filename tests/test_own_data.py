"""Training on your own labelled images: the four forms of --data, their quirks, and their errors."""

import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_MODEL, Evil, flags
from PIL import Image
from streamlit.testing.v1 import AppTest

from inkdigits import cli, datasets, idx, load_generator
from inkdigits.config import DataSpec
from inkdigits.errors import InkdigitsError

TINY = [*flags({**TINY_MODEL, "batch_size": 16, "epochs": 1, "eval_per_class": 0}), "--threads", "1"]
LETTERS = ["A", "B", "C"]


def shapes(n: int, k: int = 3, size: int = 16, seed: int = 0):
    """``n`` images of ``k`` classes: class c is a bright bar in its own row band, white on black, plus noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = rng.integers(0, 20, size=(n, size, size)).astype(np.uint8)
    band = size // k
    for i, c in enumerate(y):
        x[i, c * band : c * band + max(2, band // 2), 2 : size - 2] = 255
    return x, y.astype(np.uint8)


def idx_folder(folder, gz=False, transpose=False, offset=0, test=True):
    folder.mkdir()
    x, y = shapes(96)
    xt, yt = shapes(30, seed=1)
    if transpose:
        x, xt = x.transpose(0, 2, 1), xt.transpose(0, 2, 1)
    pairs = {"x_train": x, "y_train": y + offset, "x_test": xt, "y_test": yt + offset}
    for key, array in pairs.items():
        if key.endswith("test") and not test:
            continue
        path = folder / (idx.IDX_FILES[key] + (".gz" if gz else ""))
        idx.write_idx(path, array)
        if gz:
            path.write_bytes(gzip.compress(path.read_bytes()))
    return folder


def class_folders(folder, size=16, mode="L"):
    x, y = shapes(60, size=size)
    for name in LETTERS:
        (folder / name).mkdir(parents=True)
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        Image.fromarray(img).convert(mode).save(folder / LETTERS[label] / f"{i:03d}.png")
    return folder


def train_on(source, out, *extra):
    return cli.main(["train", "--out", str(out), "--data", str(source), *TINY, *extra])


@pytest.mark.parametrize("form", ["idx", "idx.gz", "npz", "folders", "rgb folders"])
def test_train_on_each_form_then_generate_by_name(form, tmp_path):
    if form.startswith("idx"):
        source = idx_folder(tmp_path / "idx", gz=form == "idx.gz")
        (source / "classes.txt").write_text("A\nB\nC\n")
    elif form == "npz":
        x, y = shapes(96)
        source = tmp_path / "set.npz"
        np.savez(source, images=x, labels=y, classes=np.array(LETTERS))
    else:
        source = class_folders(tmp_path / "folders", mode="RGB" if form == "rgb folders" else "L")
    out = tmp_path / "run"
    assert train_on(source, out) == 0
    info = json.loads((out / "generator.json").read_text())
    assert info["classes"] == LETTERS and info["model"]["num_classes"] == 3 and info["model"]["image_size"] == 16
    assert info["data"]["source"] == str(source)
    g = load_generator(out / "generator.safetensors")
    images = g.generate(["A", "C", "C", "B"], seed=0)
    assert images.shape == (4, 16, 16) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, g.generate([0, 2, 2, 1], seed=0))  # names and indices agree
    assert g.parse("CAB") == [2, 0, 1]


def test_emnist_style_transposed_one_based_idx(tmp_path, capsys):
    source = idx_folder(tmp_path / "emnist", transpose=True, offset=1)  # labels 1..3, images transposed
    spec = DataSpec(str(source), transpose=True, classes="XYZ")
    data = datasets.load(spec, log=lambda m: None)
    x, y = shapes(96)
    np.testing.assert_array_equal(data.x_train.numpy(), x)  # transposed back
    assert data.y_train.tolist() == y.tolist() and data.classes == ["X", "Y", "Z"]  # 1..3 -> 0..2
    out = tmp_path / "run"
    assert train_on(source, out, "--transpose", "--classes", "XYZ") == 0
    assert json.loads((out / "generator.json").read_text())["classes"] == ["X", "Y", "Z"]
    # --resume reloads the same data from the checkpoint; a different --data is refused.
    assert cli.main(["train", "--out", str(out), "--resume", "--epochs", "2", "--threads", "1"]) == 0
    assert cli.main(["train", "--out", str(out), "--resume", "--epochs", "3", "--data", "mnist"]) == 2
    assert "--data mnist differs from the checkpoint's source" in capsys.readouterr().err


def test_other_sizes_are_resized_with_a_note(tmp_path, capsys):
    source = class_folders(tmp_path / "f", size=20)  # 20 px: a multiple of 4, used as it is
    assert datasets.load(DataSpec(str(source)), log=print).x_train.shape[1:] == (20, 20)
    data = datasets.load(DataSpec(str(source), image_size=32), log=print)
    assert data.x_train.shape[1:] == (32, 32) and data.x_test.shape[1:] == (32, 32)
    assert "resizing 20x20 images to 32x32" in capsys.readouterr().out
    assert len(data.x_test) == 6  # no test split in folders: 10% held out


def test_classifier_and_evaluate_for_your_own_data(tmp_path, capsys):
    source = idx_folder(tmp_path / "idx")
    clf = tmp_path / "clf.safetensors"
    assert cli.main(["evaluate", "train-classifier", "--data", str(source), "--epochs", "2", "--out", str(clf),
                     "--threads", "1"]) == 0  # fmt: skip
    assert "test accuracy" in capsys.readouterr().out
    out = tmp_path / "run"
    assert train_on(source, out, "--eval-per-class", "5", "--classifier", str(clf), "--select", "best") == 0
    record = json.loads((out / "metrics.jsonl").read_text())
    assert record["fid"] is not None and record["selected_by"] == "best validation FID"
    capsys.readouterr()
    assert cli.main(["evaluate", "--weights", str(out / "generator.safetensors"), "--classifier", str(clf),
                     "--per-class", "10", "--json", "--threads", "1"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert len(result["samples"]["class_acc_per_digit"]) == 3 and "recall" in result["reference"]


def test_app_and_cli_speak_the_models_classes(tmp_path, monkeypatch, capsys):
    source = class_folders(tmp_path / "f")
    out = tmp_path / "run"
    assert train_on(source, out) == 0
    weights = out / "generator.safetensors"
    assert cli.main(["generate", "--label", "B", "--count", "3", "--weights", str(weights), "--out",
                     str(tmp_path / "b.png")]) == 0  # fmt: skip
    assert cli.main(["generate", "--text", "CAB", "--weights", str(weights), "--out", str(tmp_path / "t.png")]) == 0
    assert cli.main(["generate", "--digit", "1", "--weights", str(weights), "--out", str(tmp_path / "d.png")]) == 2
    assert "--label" in capsys.readouterr().err
    monkeypatch.setenv("INKDIGITS_WEIGHTS", str(weights))
    at = AppTest.from_file(str(Path(__file__).parents[1] / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert at.selectbox(key="digit").label == "Class" and at.selectbox(key="digit").options == LETTERS
    at.text_input(key="number").set_value("BAC").run()
    at.button(key="go-number").click().run()
    assert list(at.session_state["results"]["number"]["labels"]) == [1, 0, 2]
    at.text_input(key="number").set_value("BAD").run()
    at.button(key="go-number").click().run()
    assert any("only the classes A, B, C" in e.value for e in at.error)


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def bad_sources(tmp_path):
    x, y = shapes(30)
    (tmp_path / "empty").mkdir()
    mixed = class_folders(tmp_path / "mixed")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(mixed / "B" / "odd.png")
    broken = class_folders(tmp_path / "broken")
    (broken / "C" / "bad.png").write_bytes(b"not a png")
    hollow = class_folders(tmp_path / "hollow")
    (hollow / "D").mkdir()
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, images=x, labels=np.array([Evil()] * 30, dtype=object))
    return {
        "counts": (write_npz(tmp_path / "counts.npz", images=x, labels=y[:-1]), "30 train images but labels"),
        "one class": (write_npz(tmp_path / "one.npz", images=x, labels=np.zeros(30, int)), "1 classes in the labels"),
        "float labels": (write_npz(tmp_path / "fl.npz", images=x, labels=y.astype(float)), "labels must be integers"),
        "float images": (write_npz(tmp_path / "fi.npz", images=x / 255, labels=y), "train images must be uint8"),
        "no labels": (write_npz(tmp_path / "nl.npz", images=x), "needs arrays 'images' and 'labels'"),
        "pickled": (pickled, "pickled objects"),
        "missing": (tmp_path / "nope", "no such file or folder"),
        "empty folder": (tmp_path / "empty", "empty folder"),
        "mixed sizes": (mixed, "all images must have one size"),
        "unreadable image": (broken, "bad.png: cannot read this image"),
        "class without images": (hollow, "class 'D' has no images"),
        "names for absent class": (idx_folder(tmp_path / "absent"), "class 'D' has no images"),
    }


@pytest.mark.parametrize("case", ["counts", "one class", "float labels", "float images", "no labels", "pickled",
                                  "missing", "empty folder", "mixed sizes", "unreadable image",
                                  "class without images", "names for absent class"])  # fmt: skip
def test_bad_data_is_one_line_exit_2_and_writes_nothing(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source, message = bad_sources(tmp_path)[case]
    if case == "names for absent class":
        (source / "classes.txt").write_text("A\nB\nC\nD\n")
    out = tmp_path / "run"
    assert train_on(source, out) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (out / "checkpoint.pt").exists() and not (out / "generator.safetensors").exists()
    assert not (tmp_path / "pwned").exists()


def test_pickle_in_npz_is_never_loaded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.npz"
    np.savez(path, images=np.zeros((4, 16, 16), np.uint8), labels=np.array([pickle.dumps(Evil())] * 4, dtype=object))
    with pytest.raises(InkdigitsError, match="pickled objects"):
        datasets.load(DataSpec(str(path)), log=lambda m: None)
    assert not (tmp_path / "pwned").exists()


def test_emnist_file_names_with_a_prefix_are_found(tmp_path):
    folder = idx_folder(tmp_path / "plain", gz=True, offset=1)
    named = tmp_path / "emnist"
    named.mkdir()
    for path in folder.iterdir():
        (named / f"emnist-letters-{path.name.replace('t10k', 'test')}").write_bytes(path.read_bytes())
    data = datasets.load(DataSpec(str(named)), log=lambda m: None)
    assert data.classes == ["1", "2", "3"] and len(data.x_test) == 30  # the test pair was found too
    (named / "other-train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(InkdigitsError, match="several files match train-images-idx3-ubyte"):
        datasets.load(DataSpec(str(named)), log=lambda m: None)
