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
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from inkdigits import cli, load_generator
from inkdigits.errors import InkdigitsError
from inkdigits.evaluate import Classifier
from inkdigits.models import GANConfig, Generator
from inkdigits.sample import MAX_NUMBER_DIGITS, parse_number
from inkdigits.train import CHECKPOINT
from inkdigits.weights import save_weights

TINY_CFG = GANConfig(g_width=8, latent_dim=16)


@pytest.fixture(scope="module")
def good_weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("good") / "generator.safetensors"
    save_weights(Generator(**TINY_CFG.generator_kwargs()), path, {"architecture": "Generator", "config": vars(TINY_CFG)})
    return path


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


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
        path.write_bytes(pickle.dumps(_Evil()))
    elif kind == "other architecture":
        save_file({k: v.contiguous() for k, v in Classifier().state_dict().items()}, str(path))
    elif kind == "config mismatch":
        path.write_bytes(good.read_bytes())
        cfg = json.loads(cfg_text)
        cfg["config"]["g_width"] = 16
        path.with_suffix(".json").write_text(json.dumps(cfg))
    elif kind == "config not json":
        path.write_bytes(good.read_bytes())
        path.with_suffix(".json").write_text("{not json")
    elif kind == "config missing":
        path.write_bytes(good.read_bytes())
        path.with_suffix(".json").unlink()
    elif kind == "nan weights":
        net = Generator(**TINY_CFG.generator_kwargs())
        with torch.no_grad():
            net.fc.weight.fill_(float("nan"))
        save_weights(net, path, json.loads(cfg_text))
    return path


BAD_WEIGHTS = {
    "missing": "not found", "directory": "is a directory", "empty": "is empty", "truncated": "not a valid safetensors",
    "random bytes": "not a valid safetensors", "pickle renamed": "not a valid safetensors",
    "other architecture": "do not match their config", "config mismatch": "do not match their config",
    "config not json": "not a valid JSON", "config missing": "config file missing", "nan weights": "NaN",
}  # fmt: skip


@pytest.mark.parametrize("kind", list(BAD_WEIGHTS))
@pytest.mark.parametrize("command", ["generate", "export", "evaluate"])
def test_bad_weights_file(kind, command, good_weights, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = make_bad_weights(kind, tmp_path, good_weights)
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
@given(st.text(max_size=60))
def test_number_input_fuzz(text):
    try:
        digits = parse_number(text)
    except InkdigitsError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert 1 <= len(digits) <= MAX_NUMBER_DIGITS and all(0 <= d <= 9 for d in digits)
    assert "".join(map(str, digits)) == "".join(ch for ch in text.strip() if ch not in " -")


def test_sampling_is_thread_safe(good_weights):
    g = load_generator(good_weights)
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

TRAIN = ["-m", "inkdigits", "train", "--g-width", "8", "--d-width", "8", "--batch-size", "32", "--limit", "320",
         "--threads", "1", "--eval-per-class", "0"]  # fmt: skip


def train_proc(out: Path, data_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "INKDIGITS_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, *TRAIN, "--out", str(out), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_sigkill_at_random_moments_then_resume(data_dir, tmp_path):
    out, epochs = tmp_path / "run", 6
    rng = random.Random(1)
    kills = 0
    proc = train_proc(out, data_dir, "--epochs", str(epochs))
    last_epoch = 0
    for _ in range(30):
        time.sleep(rng.uniform(0.5, 2.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            assert proc.returncode == 0, proc.stderr.read()
            break
        if (out / CHECKPOINT).exists():
            state = torch.load(out / CHECKPOINT, weights_only=True)  # always loadable
            assert state["epoch"] >= last_epoch  # never goes backwards
            last_epoch = state["epoch"]
            proc = train_proc(out, data_dir, "--epochs", str(epochs), "--resume")
        else:
            proc = train_proc(out, data_dir, "--epochs", str(epochs))
    else:
        proc.wait(timeout=120)
    if proc.poll() is None:
        proc.wait(timeout=120)
    assert proc.returncode == 0
    assert kills >= 2
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))
    state = torch.load(out / CHECKPOINT, weights_only=True)
    assert state["epoch"] == epochs and state["step"] == epochs * 10
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
    assert state["epoch"] * 10 + state["step_in_epoch"] == state["step"] > 0


def test_read_only_output_folder_fails_before_training(data_dir, tmp_path):
    if os.geteuid() == 0:
        # root ignores permissions; a path under a regular file is unwritable for everyone
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "run"
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        out = tmp_path / "ro" / "run"
    proc = train_proc(out, data_dir, "--epochs", "1")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "cannot write there" in err or "must be a folder" in err
    assert len(err.strip().splitlines()) == 1


def test_disk_full_fails_before_training(data_dir, tmp_path, monkeypatch, capsys):
    import shutil

    from inkdigits import train

    monkeypatch.setattr(train.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 10**6, 10**6))
    assert cli.main(["train", *TRAIN[3:], "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "MB free" in err and not (tmp_path / "run" / CHECKPOINT).exists()
