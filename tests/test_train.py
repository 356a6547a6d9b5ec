import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL, TINY_TRAIN, flags, free_port

from inkdigits import cli, datasets, load_generator
from inkdigits import train as train_module
from inkdigits.config import LR, SMALL_DATA_LR, ModelConfig, TrainConfig
from inkdigits.errors import InkdigitsError
from inkdigits.gan import ConditionalGAN
from inkdigits.models import Discriminator, Generator
from inkdigits.rundir import CHECKPOINT, RunDir
from inkdigits.train import train

# 256 images in batches of 32: 8 steps an epoch, scored after each
TINY = [*flags({**TINY_MODEL, "batch_size": 32, "limit": 256, "val_size": 64, "eval_every": 8}), "--threads", "1"]


def tiny(**kw):
    return {**TINY_TRAIN, "limit": 128, "eval_every": 4, **kw}  # 4 steps an epoch, scored after each


def test_model_shapes_for_every_class():
    cfg = ModelConfig(**TINY_MODEL)
    g, d = Generator(cfg).eval(), Discriminator(cfg)
    y = torch.arange(cfg.num_classes)
    x = g(torch.randn(cfg.num_classes, 16), y)
    assert x.shape == (10, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert d(x, y).shape == (10,)
    # A one-hot class weight is the same as the class index (morphing relies on it).
    z = torch.randn(3, 16)
    onehot = torch.nn.functional.one_hot(torch.tensor([1, 5, 9]), 10).float()
    torch.testing.assert_close(g(z, torch.tensor([1, 5, 9])), g(z, onehot))


@pytest.mark.parametrize("size", [16, 32, 64])
def test_stage_sizes_follow_the_image_size(size):
    cfg = ModelConfig(**TINY_MODEL, image_size=size, num_classes=3)
    x = Generator(cfg)(torch.randn(2, 16), torch.tensor([0, 2]))
    assert x.shape == (2, 1, size, size)
    assert Discriminator(cfg)(x, torch.tensor([0, 2])).shape == (2,)


def test_default_generator_is_small():
    n = sum(p.numel() for p in Generator(ModelConfig()).parameters())
    assert n * 4 < 8 * 2**20  # a few MB of float32 weights


def test_gan_train_step_learns_in_memory_without_touching_the_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    gan = ConditionalGAN(ModelConfig(**TINY_MODEL), TrainConfig(ema_start=5, augment="ada"))
    x = torch.randint(0, 256, (8, 28, 28), dtype=torch.uint8)
    y = torch.randint(0, 10, (8,))
    before = {k: v.clone() for k, v in gan.G_ema.state_dict().items()}
    for _ in range(20):
        losses = gan.train_step(x, y)
    assert gan.step == 20 and set(losses) == {"loss_d", "loss_g"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert any(not torch.equal(before[k], v) for k, v in gan.G_ema.state_dict().items())
    assert gan.sample(torch.randn(3, 16), torch.tensor([0, 1, 2])).shape == (3, 28, 28)
    assert list(tmp_path.iterdir()) == []


def test_ema_is_a_copy_until_ema_start_then_an_average():
    gan = ConditionalGAN(ModelConfig(**TINY_MODEL), TrainConfig(ema_start=2, ema_decay=0.5, augment="none"))
    x, y = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8), torch.arange(4)
    for _ in range(2):
        gan.train_step(x, y)
    torch.testing.assert_close(gan.G_ema.fc.weight, gan.G.fc.weight, rtol=0, atol=0)
    previous = gan.G_ema.fc.weight.clone()
    gan.train_step(x, y)
    torch.testing.assert_close(gan.G_ema.fc.weight, 0.5 * previous + 0.5 * gan.G.fc.weight)


def test_gan_module_has_no_file_process_or_logging_code():
    import ast

    import inkdigits.gan

    tree = ast.parse(open(inkdigits.gan.__file__).read())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {"." * n.level + (n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    allowed = {"__future__", "contextlib", "copy", "numpy", "torch", "torch.nn.functional", ".augment", ".config", ".models"}
    assert imported <= allowed, imported
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert not called & {"open", "print"}


def test_train_end_to_end_then_resume_and_sample(data_dir, tmp_path):
    out = tmp_path / "run"
    assert cli.main(["train", "--out", str(out), "--epochs", "1", "--eval-per-class", "0", *TINY]) == 0
    for name in ["metrics.jsonl", "samples/step_0000008.png", "loss.png", CHECKPOINT, "generator.safetensors",
                 "generator.json", "generator_last.safetensors"]:
        assert (out / name).is_file(), name
    assert cli.main(["train", "--out", str(out), "--epochs", "2", "--resume", "--threads", "1"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[1]["step"] == 2 * records[0]["step"] > 0
    assert {"loss_d", "loss_g", "images_per_s", "seconds"} <= set(records[0])
    assert records[0]["selected_by"] == "last evaluation (--eval-per-class 0)"
    g = load_generator(out / "generator.safetensors")
    imgs = g.generate([0, 1, 2, 3], seed=3)
    assert imgs.shape == (4, 28, 28) and imgs.dtype == np.uint8
    info = json.loads((out / "generator.json").read_text())
    assert info["model"]["g_width"] == 8 and info["train"]["epochs"] == 2 and info["format_version"] == 2
    # The command is rebuilt from the parsed arguments, not read from sys.argv.
    assert info["command"] == (f"inkdigits train --out {out} --latent-dim 16 --g-width 8 --d-width 8 --epochs 1 "
                               "--eval-every 8 --batch-size 32 --eval-per-class 0 --val-size 64 --limit 256 --threads 1")
    state = torch.load(out / CHECKPOINT, weights_only=True)
    assert state["commands"][1] == f"inkdigits train --out {out} --resume --epochs 2 --threads 1"


def test_each_score_line_says_how_long_is_left(monkeypatch):
    monkeypatch.setattr(train_module.time, "perf_counter", lambda: 100.0)
    left = train_module.left_seconds((40.0, 10), 30, 90)  # 20 steps (scoring included) in 60 s; 60 steps to go
    assert left == 180.0
    record = {"step": 30, "epoch": 1, "loss_d": 1.0, "loss_g": 0.5, "augment_p": 0.0, "images_per_s": 300.0,
              "wall_seconds": 60.0, "fid": None}  # fmt: skip
    assert "1.0 min, about 3 min left" in train_module.summary(record, 90, left)
    assert "left" not in train_module.summary({**record, "step": 90}, 90, 0.0)  # the last one: done, not "0 min"


@pytest.mark.parametrize("flag, value, message", [
    ("--lr", "0.001", f"--lr-g 0.001 differs from the checkpoint's lr_g={SMALL_DATA_LR}"),  # 256 images: a small set
    ("--batch-size", "64", "--batch-size 64 differs from the checkpoint's batch_size=32"),
    ("--loss", "bce", "--loss bce differs from the checkpoint's loss=hinge"),
    ("--g-width", "16", "--g-width 16 differs from the checkpoint's g_width=8"),
])  # fmt: skip
def test_resume_refuses_flags_that_change_the_run(data_dir, tmp_path, capsys, flag, value, message):
    out = tmp_path / "run"
    train(out, tiny(), device="cpu", quiet=True)
    before = (out / CHECKPOINT).read_bytes()
    assert cli.main(["train", "--out", str(out), "--resume", flag, value, "--epochs", "2", "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert message in err and str(out / CHECKPOINT) in err and len(err.strip().splitlines()) == 1
    assert (out / CHECKPOINT).read_bytes() == before


def test_existing_run_is_not_overwritten(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    train(out, tiny(), device="cpu", quiet=True)
    before = (out / CHECKPOINT).read_bytes()
    assert cli.main(["train", "--out", str(out), *TINY]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (out / CHECKPOINT).read_bytes() == before


def test_resume_without_checkpoint_is_an_error(data_dir, tmp_path, capsys):
    assert cli.main(["train", "--out", str(tmp_path / "new"), "--resume", *TINY]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_validation_split_is_never_trained_on(data_dir, tmp_path, monkeypatch):
    seen = []
    original = ConditionalGAN.train_step

    def spy(self, x, y):
        seen.append(x.clone())
        return original(self, x, y)

    monkeypatch.setattr(ConditionalGAN, "train_step", spy)
    train(tmp_path / "run", tiny(limit=None, val_size=100), device="cpu", quiet=True)

    x_all = datasets.load_mnist().x_train
    trained = torch.cat(seen)
    held_out = x_all[-100:]
    matches = (trained[:, None] == held_out[None]).flatten(2).all(-1)
    assert not matches.any() and len(trained) == (len(x_all) - 100) // 32 * 32


def test_same_seed_same_losses(data_dir, tmp_path):
    a = train(tmp_path / "a", tiny(epochs=2), device="cpu", quiet=True).history
    b = train(tmp_path / "b", tiny(epochs=2), device="cpu", quiet=True).history
    assert [(r["loss_d"], r["loss_g"]) for r in a] == [(r["loss_d"], r["loss_g"]) for r in b]


def test_sigterm_mid_epoch_and_resume_is_exact(data_dir, tmp_path, monkeypatch):
    ref = train(tmp_path / "ref", tiny(epochs=2), device="cpu", quiet=True)
    original = ConditionalGAN.train_step

    def step_then_signal(self, x, y):
        out = original(self, x, y)
        if self.step == 3:  # the 3rd of the 4 steps in epoch 1: a real signal, handled by the loop
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(ConditionalGAN, "train_step", step_then_signal)
    with pytest.raises(SystemExit) as e:
        train(tmp_path / "cut", tiny(epochs=2), device="cpu", quiet=True)
    assert e.value.code == 143
    state = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)
    assert (state["epoch"], state["step_in_epoch"]) == (0, 3)

    monkeypatch.setattr(ConditionalGAN, "train_step", original)
    resumed = train(tmp_path / "cut", {}, resume=True, device="cpu", quiet=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    for k, v in ref.gan.G_ema.state_dict().items():
        torch.testing.assert_close(resumed.gan.G_ema.state_dict()[k], v, rtol=0, atol=0)
    assert [r["loss_d"] for r in resumed.history] == pytest.approx([r["loss_d"] for r in ref.history], rel=1e-12)


def test_interrupted_checkpoint_write_keeps_the_previous_one(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(out, tiny(), device="cpu", quiet=True)
    run = RunDir(out)
    good = run.load_checkpoint()

    def torn_save(obj, path):
        with open(path, "wb") as f:
            f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError):
        run.save_checkpoint({**good, "epoch": 99})
    assert run.load_checkpoint()["epoch"] == good["epoch"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_nan_loss_stops_with_a_clear_message(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(out, tiny(), device="cpu", quiet=True)
    good = (out / CHECKPOINT).read_bytes()
    def nan_step(self, x, y):
        self.step += 1
        return {"loss_d": torch.tensor(float("nan")), "loss_g": torch.tensor(0.0)}

    monkeypatch.setattr(ConditionalGAN, "train_step", nan_step)
    with pytest.raises(InkdigitsError, match="NaN/inf.*last good checkpoint"):
        train(out, {"epochs": 2}, resume=True, device="cpu", quiet=True)
    assert (out / CHECKPOINT).read_bytes() == good


def test_per_epoch_scores_on_the_validation_split_pick_the_export(data_dir, tmp_path):
    from inkdigits import classifier as clf

    mnist = datasets.load_mnist()
    model = clf.train_classifier(mnist.x_train[:200], mnist.y_train[:200], clf.ClassifierTrainConfig(epochs=1))
    clf.save_classifier(model, tmp_path / "clf.safetensors", {"test_accuracy": 0.0})
    out = tmp_path / "run"
    history = train(out, tiny(eval_per_class=5, epochs=2, select="best"), device="cpu", quiet=True,
                    classifier=tmp_path / "clf.safetensors").history
    assert all(0 <= r["class_acc"] <= 1 and r["fid"] >= 0 for r in history)
    assert history[0]["selected_by"] == "best validation FID"
    best = min(history, key=lambda r: r["fid"])
    info = json.loads((out / "generator.json").read_text())
    assert info["fid"] == best["fid"] and info["epoch"] == best["epoch"]


def test_a_missing_classifier_stops_before_training_and_none_says_so(data_dir, tmp_path, capsys):
    missing = tmp_path / "nope.safetensors"
    assert cli.main(["train", "--out", str(tmp_path / "a"), "--epochs", "1", "--eval-per-class", "5", "--classifier",
                     str(missing), *TINY]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert f"{missing}: no reference classifier" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a" / CHECKPOINT).exists()
    out = tmp_path / "b"
    assert cli.main(["train", "--out", str(out), "--epochs", "1", "--classifier", "none", *TINY]) == 0
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith("WARNING: per-step scores are off (--classifier none)") for line in err[:3])
    record = json.loads((out / "metrics.jsonl").read_text())
    assert record["fid"] is None and record["selected_by"] == "last evaluation (--classifier none)"


def test_ddp_two_gloo_processes_stay_in_sync(data_dir, tmp_path):
    out, dump = tmp_path / "run", tmp_path / "dump"
    dump.mkdir()
    code = "import sys, ddp_worker; ddp_worker.main(*sys.argv[1:])"
    env = {**os.environ, "PYTHONPATH": os.path.dirname(__file__), "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(out), str(dump)], stderr=subprocess.PIPE, text=True,
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(2)]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    r0, r1 = (torch.load(dump / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["steps"] == r1["steps"] == 2 * (256 // 32)  # 2 epochs; a global batch of 32 = 16 per rank
    for net in ("G", "D"):
        for name, p in r0[net].items():
            if "running" in name or "num_batches" in name or "_u" in name or "_v" in name:
                continue  # BN statistics and SN power-iteration vectors are per-rank by design
            torch.testing.assert_close(r1[net][name], p, rtol=0, atol=0, msg=f"{net}.{name} differs")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_0000008.png", "step_0000016.png"]
    state = torch.load(out / CHECKPOINT, weights_only=True)
    assert not any(k.startswith("module.") for k in state["gan"]["G"])
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_gan_options_r1_augment_and_lr_scale_train():
    gan = ConditionalGAN(ModelConfig(**TINY_MODEL), TrainConfig(augment="ada", r1_gamma=1.0))
    gan.ada.p = 0.5
    x, y = torch.randint(0, 256, (8, 28, 28), dtype=torch.uint8), torch.arange(8)
    assert gan.r1_penalty(torch.randn(8, 1, 28, 28), y) > 0
    for _ in range(17):
        losses = gan.train_step(x, y)
    assert all(torch.isfinite(v) for v in losses.values())
    gan.set_lr_scale(0.25)
    assert gan.opt_g.param_groups[0]["lr"] == pytest.approx(0.25 * LR)


def test_lr_decay_reaches_zero_at_the_end(data_dir, tmp_path):
    result = train(tmp_path / "run", tiny(epochs=2, lr_decay_epochs=1), device="cpu", quiet=True)
    assert result.gan.opt_g.param_groups[0]["lr"] == pytest.approx(result.gan.lr_g / 4)  # before the last of 4 steps
