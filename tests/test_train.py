import json
import socket

import numpy as np
import pytest
import torch

from inkdigits import cli, load_generator
from inkdigits.errors import InkdigitsError
from inkdigits.models import NUM_CLASSES, Discriminator, GANConfig, Generator
from inkdigits.train import CHECKPOINT, Trainer

TINY = ["--g-width", "8", "--d-width", "8", "--batch-size", "32", "--limit", "256", "--threads", "1"]


def tiny_config(**kw):
    base = dict(g_width=8, d_width=8, batch_size=32, epochs=1, eval_per_class=0, ema_start=4)
    base.update(kw)
    return GANConfig(**base)


def test_model_shapes_for_every_class():
    g, d = Generator(latent_dim=16, width=8, embed_dim=4).eval(), Discriminator(8)
    y = torch.arange(NUM_CLASSES)
    x = g(torch.randn(NUM_CLASSES, 16), y)
    assert x.shape == (NUM_CLASSES, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert d(x, y).shape == (NUM_CLASSES,)
    # A one-hot class weight is the same as the class index (morphing relies on it).
    z = torch.randn(3, 16)
    onehot = torch.nn.functional.one_hot(torch.tensor([1, 5, 9]), NUM_CLASSES).float()
    torch.testing.assert_close(g(z, torch.tensor([1, 5, 9])), g(z, onehot))


def test_default_generator_is_small():
    n = sum(p.numel() for p in Generator(**GANConfig().generator_kwargs()).parameters())
    assert n * 4 < 8 * 2**20  # a few MB of float32 weights


def test_train_end_to_end_then_resume_and_sample(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--out", str(out), "--epochs", "1", "--eval-per-class", "0", *TINY]) == 0
    for name in ["metrics.jsonl", "samples/epoch_001.png", "loss.png", CHECKPOINT, "generator.safetensors",
                 "generator.json", "generator_last.safetensors"]:
        assert (out / name).is_file(), name
    assert cli.main(["train", "--out", str(out), "--epochs", "2", "--resume", *TINY]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[1]["step"] == 2 * records[0]["step"] > 0
    assert {"loss_d", "loss_g", "images_per_s", "seconds"} <= set(records[0])
    g = load_generator(out / "generator.safetensors")
    imgs = g.generate([0, 1, 2, 3], seed=3)
    assert imgs.shape == (4, 28, 28) and imgs.dtype == np.uint8
    np.testing.assert_array_equal(imgs, g.generate([0, 1, 2, 3], seed=3))
    assert json.loads((out / "generator.json").read_text())["config"]["g_width"] == 8


def test_existing_run_is_not_overwritten(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    Trainer(tiny_config(), out, device="cpu", limit=64, quiet=True).train()
    before = (out / CHECKPOINT).read_bytes()
    assert cli.main(["train", "--out", str(out), *TINY]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (out / CHECKPOINT).read_bytes() == before


def test_resume_without_checkpoint_is_an_error(data_dir, tmp_path, capsys):
    assert cli.main(["train", "--out", str(tmp_path / "new"), "--resume", *TINY]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_same_seed_same_losses(data_dir, tmp_path):
    a = Trainer(tiny_config(epochs=2), tmp_path / "a", device="cpu", limit=128, quiet=True).train()
    b = Trainer(tiny_config(epochs=2), tmp_path / "b", device="cpu", limit=128, quiet=True).train()
    assert [(r["loss_d"], r["loss_g"]) for r in a] == [(r["loss_d"], r["loss_g"]) for r in b]


def test_stop_mid_epoch_and_resume_is_exact(data_dir, tmp_path):
    ref = Trainer(tiny_config(epochs=2), tmp_path / "ref", device="cpu", limit=128, quiet=True)
    ref.train()

    t = Trainer(tiny_config(epochs=2), tmp_path / "cut", device="cpu", limit=128, quiet=True)
    original = t.gan_step

    def step_then_signal(*a):
        out = original(*a)
        if t.step == 2:  # the 3rd step (counted after this returns) of the 4 in epoch 1
            t.stop_signal = 15
        return out

    t.gan_step = step_then_signal
    with pytest.raises(SystemExit) as e:
        t.train()
    assert e.value.code == 143
    state = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)
    assert (state["epoch"], state["step_in_epoch"]) == (0, 3)

    resumed = Trainer(tiny_config(epochs=2), tmp_path / "cut", device="cpu", limit=128, quiet=True, resume=True)
    history = resumed.train()
    assert [r["epoch"] for r in history] == [1, 2]
    for k, v in ref.G_ema.state_dict().items():
        torch.testing.assert_close(resumed.G_ema.state_dict()[k], v, rtol=0, atol=0)
    assert [r["loss_d"] for r in history] == pytest.approx([r["loss_d"] for r in ref.history], rel=1e-12)


def test_interrupted_checkpoint_write_keeps_the_previous_one(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    t = Trainer(tiny_config(), out, device="cpu", limit=64, quiet=True)
    t.train()
    good = torch.load(out / CHECKPOINT, weights_only=True)

    def torn_save(obj, path):
        with open(path, "wb") as f:
            f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError):
        t.save_checkpoint()
    again = torch.load(out / CHECKPOINT, weights_only=True)
    assert again["step"] == good["step"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_nan_loss_stops_with_a_clear_message(data_dir, tmp_path):
    out = tmp_path / "run"
    Trainer(tiny_config(), out, device="cpu", limit=64, quiet=True).train()
    good = (out / CHECKPOINT).read_bytes()
    t = Trainer(tiny_config(epochs=2), out, device="cpu", limit=64, quiet=True, resume=True, resume_epochs=2)
    t.gan_step = lambda x, y: (torch.tensor(float("nan")), torch.tensor(0.0))
    with pytest.raises(InkdigitsError, match="NaN/inf.*last good checkpoint"):
        t.train()
    assert (out / CHECKPOINT).read_bytes() == good


def test_per_epoch_metrics_with_a_classifier(data_dir, tmp_path):
    from inkdigits import data
    from inkdigits import evaluate as ev

    mnist = data.load_mnist()
    clf = ev.train_classifier(mnist.x_train[:200], mnist.y_train[:200], epochs=1)
    ev.save_classifier(clf, tmp_path / "clf.safetensors", {"test_accuracy": 0.0})
    out = tmp_path / "run"
    history = Trainer(tiny_config(eval_per_class=5), out, device="cpu", limit=64, quiet=True,
                      classifier=tmp_path / "clf.safetensors").train()
    assert {"class_acc", "fid", "diversity"} <= set(history[0])
    assert 0 <= history[0]["class_acc"] <= 1 and history[0]["fid"] >= 0
    info = json.loads((out / "generator.json").read_text())
    assert info["fid"] == history[0]["fid"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_gloo_processes_stay_in_sync(data_dir, tmp_path):
    import ddp_worker
    import torch.multiprocessing as mp

    out, dump = tmp_path / "run", tmp_path / "dump"
    dump.mkdir()
    mp.start_processes(ddp_worker.run, args=(2, free_port(), str(out), str(dump), str(data_dir)), nprocs=2,
                       start_method="fork")
    r0, r1 = (torch.load(dump / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["steps"] == r1["steps"] == 2 * (256 // 32)  # 2 epochs; a global batch of 32 = 16 per rank
    for net in ("G", "D"):
        for name, p in r0[net].items():
            if "running" in name or "num_batches" in name or "_u" in name or "_v" in name:
                continue  # BN statistics and SN power-iteration vectors are per-rank by design
            torch.testing.assert_close(r1[net][name], p, rtol=0, atol=0, msg=f"{net}.{name} differs")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    state = torch.load(out / CHECKPOINT, weights_only=True)
    assert not any(k.startswith("module.") for k in state["G"])
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
