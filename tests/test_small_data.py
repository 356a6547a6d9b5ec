"""Small data sets: the recipe, the run's own judge (reference classifier), ADA, and --minutes."""

import json
import time

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL, TINY_TRAIN, flags, synthetic_arrays

from inkdigits import augment, cli
from inkdigits.augment import ADA_INTERVAL, AdaptiveAugment
from inkdigits.config import (
    LR,
    MIN_EVAL_EVERY,
    MIN_STEPS,
    SMALL_DATA,
    SMALL_DATA_DIVERSITY,
    SMALL_DATA_LR,
    ModelConfig,
    TrainConfig,
    recipe,
)
from inkdigits.errors import InkdigitsError
from inkdigits.gan import ConditionalGAN
from inkdigits.judge import RUN_CLASSIFIER
from inkdigits.rundir import CHECKPOINT
from inkdigits.train import train

RUN = {**{k: v for k, v in TINY_TRAIN.items() if k != "epochs"}, "eval_per_class": 5, "eval_every": 4, "steps": 8}


@pytest.fixture
def own_npz(tmp_path):
    """The synthetic digits as a user's own .npz (no test split: inkdigits holds one out)."""
    arrays = synthetic_arrays(n_train=400)
    path = tmp_path / "mine.npz"
    np.savez(path, images=arrays["x_train"], labels=arrays["y_train"])
    return path


def test_recipe_gives_small_sets_steps_a_higher_lr_ada_minibatch_std_and_decay_and_full_mnist_its_old_recipe():
    model, small, line = recipe(ModelConfig(), TrainConfig(), n_train=900, steps_per_epoch=14)
    assert (small.steps, small.eval_every, small.augment) == (MIN_STEPS, MIN_EVAL_EVERY, "ada")
    assert small.lr_decay_epochs == 71 and model.d_minibatch_std  # the last third: 994 of 3,000 steps
    assert small.diversity == SMALL_DATA_DIVERSITY > 0 and small.lr_g == small.lr_d == SMALL_DATA_LR > LR
    assert line.startswith("recipe for 900 training images (a small set, fewer than 20,000): 3,000 steps of 64")
    assert (f"learning rate {SMALL_DATA_LR:g}, augmentation ada, minibatch std in D, mode-seeking term {SMALL_DATA_DIVERSITY:g}, learning rates "
            "decayed to 0 over the last 994 steps, the last evaluation exported") in line  # fmt: skip
    assert small.select == "last"
    model, full, line = recipe(ModelConfig(), TrainConfig(), n_train=55_000, steps_per_epoch=859)
    assert (full.steps, full.eval_every, full.augment, full.lr_decay_epochs) == (35 * 859, 859, "none", 0)
    assert full.diversity == 0 and full.lr_g == full.lr_d == LR and full.select == "best"
    assert model == ModelConfig() and line.endswith(f"scored every 859 steps; learning rate {LR:g}, augmentation none")
    assert f"not fewer than {SMALL_DATA:,}" in line
    # what flags set is kept, and a resumed run's model is the checkpoint's
    flags = TrainConfig(epochs=3, augment="none", eval_every=7, lr_decay_epochs=0, diversity=0.0, lr_d=1e-3,
                        select="best")  # fmt: skip
    model, given, _ = recipe(ModelConfig(), flags, n_train=900, steps_per_epoch=14, given={"d_minibatch_std"})
    assert (given.steps, given.eval_every, given.augment, given.lr_decay_epochs, given.diversity) == (42, 7, "none", 0, 0)
    assert given.select == "best"
    assert recipe(ModelConfig(), TrainConfig(select="last"), n_train=55_000, steps_per_epoch=859)[1].select == "last"
    assert (given.lr_g, given.lr_d) == (SMALL_DATA_LR, 1e-3)
    assert not model.d_minibatch_std and not recipe(ModelConfig(), TrainConfig(), 900, 14, None)[0].d_minibatch_std


def test_own_data_gets_its_own_classifier_used_for_selection_and_reused_on_resume(own_npz, tmp_path, capsys):
    out = tmp_path / "run"
    history = train(out, {**RUN, "select": "best"}, data={"source": str(own_npz)}, device="cpu").history
    err = capsys.readouterr().err
    assert err.splitlines()[1].startswith("recipe for 296 training images")  # after the note on the test split
    assert "reference classifier: trained on the" in err and str(out / RUN_CLASSIFIER) in err
    info = json.loads((out / "classifier.json").read_text())
    assert info["classes"] == [str(d) for d in range(10)] and 0 <= info["validation_accuracy"] <= 1
    assert [r["step"] for r in history] == [4, 8] and all(r["fid"] >= 0 for r in history)
    best = min(history, key=lambda r: r["fid"])
    exported = json.loads((out / "generator.json").read_text())
    assert (exported["step"], exported["selected_by"]) == (best["step"], "best validation FID")

    weights = (out / RUN_CLASSIFIER).read_bytes()
    resumed = train(out, {"steps": 12}, resume=True, device="cpu").history
    err = capsys.readouterr().err
    assert "reusing" in err and "trained on the" not in err
    assert (out / RUN_CLASSIFIER).read_bytes() == weights and resumed[-1]["step"] == 12
    # `inkdigits evaluate` of the run's generator finds the run's judge beside it
    assert cli.main(["evaluate", "--weights", str(out / "generator.safetensors"), "--per-class", "5", "--json",
                     "--no-reference", "--threads", "1"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert f"reference classifier: {out / RUN_CLASSIFIER}" in captured.err
    assert len(json.loads(captured.out)["samples"]["class_acc_per_digit"]) == 10


def test_classifier_none_trains_without_scores_and_says_so(own_npz, tmp_path, capsys):
    history = train(tmp_path / "run", RUN, data={"source": str(own_npz)}, device="cpu", classifier="none").history
    assert "WARNING: per-step scores are off (--classifier none)" in capsys.readouterr().err
    assert all(r["fid"] is None for r in history) and not (tmp_path / "run" / RUN_CLASSIFIER).exists()


def test_a_classifier_for_other_classes_is_refused(own_npz, tmp_path, capsys):
    from inkdigits import classifier as clf

    arrays = synthetic_arrays(n_train=100)
    model = clf.train_classifier(arrays["x_train"], arrays["y_train"], clf.ClassifierTrainConfig(epochs=1))
    names = list("abcdefghij")
    clf.save_classifier(model, tmp_path / "c.safetensors", {"classes": names})
    argv = ["train", "--data", str(own_npz), "--out", str(tmp_path / "run"), "--classifier", str(tmp_path / "c.safetensors"),
            *flags(TINY_MODEL), "--steps", "2", "--threads", "1"]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "a classifier for classes a, b, c, d, e, f, ... (10), but the data's are 0, 1" in err
    assert err.splitlines()[-1].startswith("inkdigits: error: ") and "Traceback" not in err
    assert not (tmp_path / "run" / CHECKPOINT).exists()


def test_a_class_too_small_for_a_classifier_is_one_line(tmp_path, capsys):
    arrays = synthetic_arrays(n_train=300)
    x, y = arrays["x_train"], arrays["y_train"].astype(np.int64)
    keep = (y != 3) | (np.cumsum(y == 3) <= 1)  # one image of class 3 in all
    np.savez(tmp_path / "few.npz", x_train=x[keep], y_train=y[keep], x_test=x[:20], y_test=y[:20])
    argv = ["train", "--data", str(tmp_path / "few.npz"), "--out", str(tmp_path / "run"), "--steps", "2",
            *flags(TINY_MODEL), "--threads", "1"]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "class '3' has" in err and "at least 2 per class" in err
    assert err.splitlines()[-1].startswith("inkdigits: error: ") and "Traceback" not in err


def test_a_small_set_exports_its_last_evaluation_and_says_so(own_npz, tmp_path, capsys):
    out = tmp_path / "run"
    history = train(out, RUN, data={"source": str(own_npz)}, device="cpu").history
    assert "the last evaluation exported" in capsys.readouterr().err.splitlines()[1]
    assert [r["step"] for r in history] == [4, 8] and all(r["fid"] >= 0 for r in history)  # still scored
    exported = json.loads((out / "generator.json").read_text())
    assert (exported["step"], exported["fid"], exported["selected_by"]) == (8, history[-1]["fid"],
                                                                            "last evaluation (--select last)")
    assert (out / "generator.safetensors").read_bytes() == (out / "generator_last.safetensors").read_bytes()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "x"])
def test_minutes_must_be_a_positive_number(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--out", str(tmp_path / "run"), "--minutes", value])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "--minutes" in err and len(err.splitlines()) == 1 and not (tmp_path / "run").exists()
    with pytest.raises(InkdigitsError, match="--minutes"):
        train(tmp_path / "api", minutes=0)


def test_minutes_stops_in_time_exports_the_best_and_resume_goes_on(own_npz, tmp_path, capsys):
    out = tmp_path / "run"
    t0 = time.monotonic()
    first = train(out, {**RUN, "steps": 1_000_000, "eval_every": 10, "select": "best"}, data={"source": str(own_npz)},
                  device="cpu", minutes=0.1)  # fmt: skip
    took = time.monotonic() - t0
    assert first.gan.step < 1_000_000 and first.history[-1]["step"] == first.gan.step
    assert took < 6 + 30  # the budget, plus one evaluation and the process's own slack on a loaded machine
    assert "--minutes 0.1: stopped at step" in capsys.readouterr().err
    best = min(first.history, key=lambda r: r["fid"])
    assert json.loads((out / "generator.json").read_text())["step"] == best["step"]
    step = first.gan.step
    resumed = train(out, {"steps": step + 3}, resume=True, device="cpu", quiet=True)
    assert resumed.gan.step == step + 3 and resumed.history[-1]["step"] == step + 3


def ada_after(signal: float, steps: int, start_p: float = 0.0) -> list[float]:
    ada = AdaptiveAugment(enabled=True, target=0.6)
    ada.p = start_p
    ps = []
    for _ in range(steps):
        ada.observe(torch.full((64,), signal))
        ps.append(ada.p)
    return ps


def test_ada_raises_p_while_d_is_sure_of_real_images_and_lowers_it_when_not():
    rising = ada_after(+1.0, 40 * ADA_INTERVAL)  # D calls every real image real: it has memorised them
    assert rising[-1] > rising[ADA_INTERVAL] > 0 and rising == sorted(rising)
    falling = ada_after(-1.0, 40 * ADA_INTERVAL, start_p=0.5)
    assert falling[-1] < 0.5 and falling == sorted(falling, reverse=True)
    assert ada_after(-1.0, 10 * ADA_INTERVAL) == [0.0] * (10 * ADA_INTERVAL)  # never below 0
    off = AdaptiveAugment(enabled=False, target=0.6)
    for _ in range(ADA_INTERVAL):
        off.observe(torch.ones(8))
    assert off.p == 0 and off.last_rt == 1.0  # still reports how much D overfits


def test_ada_p_rises_when_a_gan_memorises_a_few_images():
    gan = ConditionalGAN(ModelConfig(**TINY_MODEL), TrainConfig(augment="ada", lr_d=2e-3, seed=1))
    x, y = torch.from_numpy(synthetic_arrays(n_train=16)["x_train"]), torch.arange(16) % 10
    for _ in range(200):
        gan.train_step(x, y)
    assert gan.ada.last_rt > 0.6 and gan.ada.p > 0


def test_real_and_fake_images_get_the_same_kind_of_augmentation(monkeypatch):
    gan = ConditionalGAN(ModelConfig(**TINY_MODEL), TrainConfig(augment="ada"))
    gan.ada.p = 1.0
    seen = []
    original = gan.D.forward

    def spy(x, y):
        seen.append(x.detach().clone())
        return original(x, y)

    monkeypatch.setattr(gan.D, "forward", spy)
    monkeypatch.setattr(gan.G, "forward", lambda z, y: torch.ones(len(z), 1, 28, 28, requires_grad=True))
    gan.train_step(torch.full((32, 28, 28), 255, dtype=torch.uint8), torch.arange(32) % 10)
    both, fake_for_g = seen[0], seen[1]
    real, fake = both[:32], both[32:]
    # The same all-ink image on both sides: every transform shows as the same statistics in each half.
    for images in (real, fake, fake_for_g):
        blank = (images < -0.99).flatten(1).sum(1).float()
        assert (blank > 0).float().mean() > 0.9  # shifted-in rows and cut-out squares on nearly every image
        assert images.flatten(1).max(1).values.std() > 0  # brightness and contrast drawn per image
    assert abs(real.mean() - fake.mean()) < 0.15


def test_augment_shifts_and_cuts_on_black_keeps_gradients_and_is_seeded():
    x = torch.full((16, 1, 28, 28), 1.0, requires_grad=True)
    out = augment.augment(x, 1.0, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    side = round(28 * augment.CUTOUT)
    assert ((out == -1).flatten(1).sum(1) >= side * side - 28 * augment.SHIFT * 2).all()
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.equal(augment.augment(x, 1.0, torch.Generator().manual_seed(0)), out)
    assert augment.augment(x, 0.0, torch.Generator()) is x


def test_resume_restores_the_ada_probability_exactly(own_npz, tmp_path):
    data = {"source": str(own_npz)}
    # p rises at every adjustment, so there is state to lose; no decay, whose length a shorter run would change
    run = {**RUN, "ada_target": -1.0, "lr_decay_epochs": 0}
    straight = train(tmp_path / "a", {**run, "steps": 10}, data=data, device="cpu", quiet=True)
    train(tmp_path / "b", {**run, "steps": 6}, data=data, device="cpu", quiet=True)
    resumed = train(tmp_path / "b", {"steps": 10}, resume=True, device="cpu", quiet=True)
    assert resumed.gan.ada.state_dict() == straight.gan.ada.state_dict() and straight.gan.ada.p > 0
    for k, v in straight.gan.G_ema.state_dict().items():
        torch.testing.assert_close(resumed.gan.G_ema.state_dict()[k], v, rtol=0, atol=0)


@pytest.mark.parametrize("half", [8, 6, 3])
def test_minibatch_std_sees_each_half_of_the_batch_alone(half):
    from inkdigits.models import Discriminator, group_std

    alike, varied = torch.zeros(half, 4, 7, 7), torch.randn(half, 4, 7, 7)  # a collapsed G beside real variety
    spread = group_std(torch.cat([alike, varied]))[:, 0, 0, 0]
    assert (spread[:half] < 1e-3).all()  # no group mixes the two halves
    assert (spread[half:] > 0.1).all() or half % 2  # an odd half has groups of 1, which carry no spread
    d = Discriminator(ModelConfig(**TINY_MODEL, d_minibatch_std=True))
    assert d(torch.randn(2 * half, 1, 28, 28), torch.arange(2 * half) % 10).shape == (2 * half,)


def test_a_set_saved_class_by_class_is_shuffled_before_the_validation_split(tmp_path):
    from inkdigits import datasets
    from inkdigits.config import DataSpec
    from inkdigits.train import split

    arrays = synthetic_arrays(n_train=400)
    order = np.argsort(arrays["y_train"], kind="stable")  # class 0 first, class 9 last
    np.savez(tmp_path / "sorted.npz", x_train=arrays["x_train"][order], y_train=arrays["y_train"][order],
             x_test=arrays["x_test"], y_test=arrays["y_test"])  # fmt: skip
    dataset = datasets.load(DataSpec(str(tmp_path / "sorted.npz")), log=lambda m: None)
    _, y, _, y_val = split(dataset, TrainConfig(), shuffle=True)
    assert len(y_val) == 40 and len(set(y_val.tolist())) >= 8 and len(set(y.tolist())) == 10
    _, _, _, y_last = split(dataset, TrainConfig())  # MNIST's own order is random already: kept as it is
    assert set(y_last.tolist()) == {9}


def test_class_guidance_without_a_classifier_is_one_line_and_makes_no_run_folder(own_npz, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(own_npz), "--out", str(out), "--guidance", "0.3", "--classifier", "none",
                     *flags(RUN)]) == 2  # fmt: skip
    assert "--guidance 0.3 needs a reference classifier" in capsys.readouterr().err
    assert not out.exists()


def test_warp_moves_the_ink_of_the_chosen_images_only_keeps_the_paper_and_is_seeded():
    x = upright(64)
    out = augment.warp(x, 0.5, torch.Generator().manual_seed(0))
    moved = (out - x).abs().flatten(1).amax(1) > 1e-4
    assert 16 < moved.sum() < 48  # about half the images, the others exactly as they were
    assert out.min() >= -1 and out.max() <= 1
    assert torch.equal(out[:, :, :2], x[:, :, :2])  # the margin stays blank paper
    ink = (out + 1).flatten(1).sum(1) / (x + 1).flatten(1).sum(1)
    assert ((ink > 0.75) & (ink < 1.3)).all()  # rotated, scaled and slanted, not erased
    assert torch.equal(augment.warp(x, 0.5, torch.Generator().manual_seed(0)), out)
    assert augment.warp(x, 0.0, torch.Generator()) is x


def test_warp_strength_scales_the_transform():
    x = upright(32)
    moved = {s: (augment.warp(x, 1.0, torch.Generator().manual_seed(0), s) - x).abs().mean() for s in (0.0, 1.0, 3.0)}
    assert moved[0.0] < 1e-5  # no rotation, scale or slant: the images as they were
    assert 0 < moved[1.0] < moved[3.0]


def test_warp_reaches_the_real_images_and_not_the_fakes(monkeypatch):
    gan = ConditionalGAN(ModelConfig(**TINY_MODEL), TrainConfig(augment="none", warp=1.0))
    seen = []
    original = gan.D.forward
    monkeypatch.setattr(gan.D, "forward", lambda x, y: seen.append(x.detach().clone()) or original(x, y))
    monkeypatch.setattr(gan.G, "forward", lambda z, y: upright(len(z)).requires_grad_(True))
    gan.train_step(((upright(32)[:, 0] + 1) * 127.5).round().to(torch.uint8), torch.arange(32) % 10)
    real, fake = seen[0][:32], seen[0][32:]
    assert torch.equal(fake, upright(32)) and torch.equal(seen[1], upright(32))
    assert ((real - upright(32)).abs().flatten(1).amax(1) > 0.01).float().mean() > 0.9


def upright(n: int) -> torch.Tensor:
    """``n`` images of one upright stroke on blank paper."""
    x = torch.full((n, 1, 28, 28), -1.0)
    x[:, :, 6:22, 12:16] = 1.0
    return x
