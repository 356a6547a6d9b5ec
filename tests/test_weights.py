"""Weights files: the shipped ones load through importlib.resources, both sidecar formats read the same."""

import json
import shutil

import numpy as np
import pytest

from inkdigits import load_generator, resources
from inkdigits.classifier import load_classifier


@pytest.fixture(autouse=True)
def shipped_weights(monkeypatch):
    """These tests are about the shipped weights: a user's INKDIGITS_WEIGHTS must not stand in for them."""
    monkeypatch.delenv("INKDIGITS_WEIGHTS", raising=False)


def test_shipped_weights_are_package_data():
    for name in ("generator.safetensors", "generator.json", "classifier.safetensors", "classifier.json"):
        assert resources.pretrained(name).is_file(), name
    g = load_generator()
    assert g.path == resources.pretrained("generator.safetensors")
    assert g.info["format_version"] == 2 and g.config.num_classes == 10
    assert load_classifier().config.feature_dim == 128


def test_format_1_and_format_2_sidecars_give_the_same_images(tmp_path, monkeypatch):
    shipped = resources.pretrained("generator.safetensors")
    v2 = json.loads(shipped.with_suffix(".json").read_text())
    model = {k: v for k, v in v2["model"].items() if k not in ("num_classes", "image_size")}  # 0.1 had neither
    v1 = {"architecture": "Generator", "config": {**model, **v2["train"], "extra": {"command": v2["command"]}},
          "epoch": v2["epoch"], "fid": v2["fid"]}  # fmt: skip
    old = tmp_path / "generator.safetensors"
    shutil.copy(shipped, old)
    old.with_suffix(".json").write_text(json.dumps(v1))
    digits = list(range(10)) * 2
    np.testing.assert_array_equal(load_generator(old).generate(digits, seed=0), load_generator().generate(digits, seed=0))
    np.testing.assert_array_equal(load_generator(old).morph(1, 7, seed=3), load_generator().morph(1, 7, seed=3))


def test_a_deeper_generator_saves_and_loads_and_depth_0_keeps_the_old_names(tmp_path):
    import torch

    from inkdigits.config import ModelConfig
    from inkdigits.models import Generator, to_uint8
    from inkdigits.weights import save_weights, sidecar

    config = ModelConfig(g_width=8, latent_dim=16, g_depth=2)
    torch.manual_seed(0)
    net = Generator(config).eval()
    names = set(net.state_dict())
    assert {"refine14.1.conv.weight", "refine28.1.bn.gain.weight"} <= names
    assert not {n for n in Generator(ModelConfig(g_width=8, latent_dim=16)).state_dict() if "refine" in n}
    path = tmp_path / "deep.safetensors"
    save_weights(net, path, sidecar("Generator", vars(config), epoch=0))
    g = load_generator(path)
    assert g.config.g_depth == 2
    z = torch.randn(4, 16)
    with torch.no_grad():
        expected = to_uint8(net(z, torch.arange(4))).numpy()
    np.testing.assert_array_equal(g.generate([0, 1, 2, 3], styles=z.numpy()), expected)
