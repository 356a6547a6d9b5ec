"""Bad input of every kind, killed training, and many threads sampling at once."""

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL, Evil, flags
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from inkdigits import cli, load_generator
from inkdigits.compose import MAX_LINE, MAX_NUMBER_DIGITS, parse_line
from inkdigits.config import DIGITS, ClassifierConfig
from inkdigits.errors import InkdigitsError
from inkdigits.models import Classifier
from inkdigits.rundir import CHECKPOINT


def make_bad_weights(kind: str, folder: Path, good: Path) -> Path:
    path = folder / "generator.safetensors"
    cfg_text = good.with_suffix(".json").read_text()
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
        return path
    path.with_suffix(".json").write_text(cfg_text)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "random bytes":
        path.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(4096)))
    elif kind == "pickle renamed":
        path.write_bytes(pickle.dumps(Evil()))
    elif kind == "other architecture":
        save_file({k: v.contiguous() for k, v in Classifier(ClassifierConfig()).state_dict().items()}, str(path))
    elif kind == "config mismatch":
        path.write_bytes(good.read_bytes())
        cfg = json.loads(cfg_text)
        cfg["model"]["g_width"] = 16
        path.with_suffix(".json").write_text(json.dumps(cfg))
    elif kind == "config not json":
        path.write_bytes(good.read_bytes())
        path.with_suffix(".json").write_text("{not json")
    elif kind == "config missing":
        path.write_bytes(good.read_bytes())
        path.with_suffix(".json").unlink()
    elif kind == "nan weights":
        tensors = load_file(str(good))
        tensors["fc.weight"].fill_(float("nan"))
        save_file(tensors, str(path))
    elif kind == "newer format":
        path.write_bytes(good.read_bytes())
        cfg = json.loads(cfg_text)
        cfg.update(format_version=99, inkdigits_version="9.0.0")
        path.with_suffix(".json").write_text(json.dumps(cfg))
    return path


BAD_WEIGHTS = {
    "missing": "not found", "directory": "is a directory", "empty": "is empty", "truncated": "not a valid safetensors",
    "random bytes": "not a valid safetensors", "pickle renamed": "not a valid safetensors",
    "other architecture": "do not match their config", "config mismatch": "do not match their config",
    "config not json": "not a valid JSON", "config missing": "config file missing", "nan weights": "NaN",
    "newer format": "written by inkdigits 9.0.0 in weights format 99",
}  # fmt: skip


@pytest.mark.parametrize("kind", list(BAD_WEIGHTS))
@pytest.mark.parametrize("command", ["generate", "export", "evaluate"])
def test_bad_weights_file(kind, command, tiny_weights, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = make_bad_weights(kind, tmp_path, tiny_weights)
    out = tmp_path / ("out.png" if command == "generate" else "out.npz")
    out.write_bytes(b"previous good output")
    argv = {"generate": ["generate", "--digit", "3", "--out", str(out)],
            "export": ["export", "--per-class", "2", "--out", str(out)],
            "evaluate": ["evaluate", "--per-class", "2", "--no-reference"]}[command]  # fmt: skip
    if command == "evaluate":
        monkeypatch.setenv("INKDIGITS_DATA_DIR", str(tmp_path / "no-data"))  # weights are checked first
    assert cli.main([*argv, "--weights", str(path)]) == 2
    err = capsys.readouterr().err
    assert BAD_WEIGHTS[kind] in err and str(path.with_suffix("")) in err, err  # names the .safetensors or .json
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert out.read_bytes() == b"previous good output"  # no good file overwritten
    assert not (tmp_path / "pwned").exists()  # nothing executed from the file


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.text(alphabet="0123456789-./: \t", max_size=40)))
def test_number_input_fuzz(text):
    try:
        line, digits = parse_line(text, DIGITS)
    except InkdigitsError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert 1 <= len(digits) <= MAX_NUMBER_DIGITS and len(line) <= MAX_LINE and all(0 <= d <= 9 for d in digits)
    assert "".join(map(str, digits)) == "".join(ch for ch in line if ch.isdigit())
    assert line == " ".join(text.split()) and set(line) <= set("0123456789-./: ")


def test_sampling_is_thread_safe(tiny_weights):
    g = load_generator(tiny_weights)
    jobs = [(i % 10, i) for i in range(100)]
    expected = {seed: g.generate([digit] * 5, seed=seed) for digit, seed in jobs}
    failures = []

    def worker(offset):
        for k in range(len(jobs)):
            digit, seed = jobs[(k + offset) % len(jobs)]
            if not np.array_equal(g.generate([digit] * 5, seed=seed), expected[seed]):
                failures.append(seed)

    threads = [threading.Thread(target=worker, args=(7 * t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


# --------------------------------------------------------------------------- faults during training

TRAIN = ["-m", "inkdigits", "train", "--threads", "1",  # 10 steps an epoch
         *flags({**TINY_MODEL, "batch_size": 32, "limit": 320, "val_size": 64, "eval_every": 10, "eval_per_class": 0})]


def train_proc(out: Path, data_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "INKDIGITS_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, *TRAIN, "--out", str(out), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def epochs_done(out: Path) -> int:
    try:
        return len((out / "metrics.jsonl").read_text().splitlines())
    except FileNotFoundError:
        return 0


def test_sigkill_after_checkpoints_then_resume_is_exact(data_dir, tmp_path):
    """SIGKILL right after the checkpoints of epochs 1, 3 and 5 are written (the process is then early in
    the next epoch); each resume continues from the file, and the end result equals an uninterrupted run."""
    out, epochs = tmp_path / "run", 7
    proc = train_proc(out, data_dir, "--epochs", str(epochs))
    kills, last_epoch = 0, 0
    for target in (1, 3, 5):
        deadline = time.time() + 120
        while epochs_done(out) < target:
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() < deadline, "no progress in 120 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        state = torch.load(out / CHECKPOINT, weights_only=True)  # always loadable
        assert target <= state["epoch"] < epochs and state["epoch"] >= last_epoch
        last_epoch = state["epoch"]
        proc = train_proc(out, data_dir, "--epochs", str(epochs), "--resume")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert kills == 3
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))
    state = torch.load(out / CHECKPOINT, weights_only=True)
    assert state["epoch"] == epochs and state["gan"]["step"] == epochs * 10  # 320 images / batch 32

    ref = train_proc(tmp_path / "ref", data_dir, "--epochs", str(epochs))
    assert ref.wait(timeout=120) == 0
    assert (out / "generator_last.safetensors").read_bytes() == (tmp_path / "ref" / "generator_last.safetensors").read_bytes()
    load_generator(out / "generator.safetensors").generate([1, 2], seed=0)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_and_exits(data_dir, tmp_path, sig, code):
    out = tmp_path / "run"
    proc = train_proc(out, data_dir, "--epochs", "500")
    deadline = time.time() + 60
    while not (out / "metrics.jsonl").exists():  # let it finish one epoch first
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "continue with --resume" in err and "Traceback" not in err
    state = torch.load(out / CHECKPOINT, weights_only=True)
    assert state["epoch"] * 10 + state["step_in_epoch"] == state["gan"]["step"] > 0


def test_read_only_output_folder_fails_before_training(data_dir, read_only_folder):
    out = read_only_folder / "run"
    proc = train_proc(out, data_dir, "--epochs", "1")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"{out}: cannot write there" in err and ("Read-only file system" in err or "Permission denied" in err)
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_an_output_path_under_a_file_fails_before_training(data_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "run"
    proc = train_proc(out, data_dir, "--epochs", "1")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and f"{out}: cannot make a folder there" in err
    assert len(err.strip().splitlines()) == 1


def test_disk_full_fails_before_training(data_dir, tmp_path, monkeypatch, capsys):
    from inkdigits import rundir

    usage = types.SimpleNamespace(total=10**9, used=10**9 - 10**6, free=10**6)
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda path: usage)
    assert cli.main(["train", *TRAIN[3:], "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "MB free" in err and not (tmp_path / "run" / CHECKPOINT).exists()
