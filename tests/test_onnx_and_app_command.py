"""ONNX export (checked with onnxruntime) and `inkdigits app` (the packaged app, served by Streamlit)."""

import os
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import free_port

from inkdigits import cli, load_generator


def test_onnx_export_matches_pytorch(tiny_weights, tmp_path, capsys):
    out = tmp_path / "g.onnx"
    assert cli.main(["export-onnx", "--weights", str(tiny_weights), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    g = load_generator(tiny_weights)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for n in (1, 5, 33):  # the batch size is dynamic
        z = g.styles(n, seed=n)
        labels = np.arange(n) % 10
        images, pixels = session.run(None, {"z": z, "labels": labels})
        expected = g.generate(labels, styles=z)
        assert images.dtype == np.uint8 and images.shape == expected.shape
        assert np.abs(images.astype(int) - expected).max() <= 1  # identical or one grey level apart
        with_torch = g.net(torch.from_numpy(z), torch.from_numpy(labels)).numpy()
        np.testing.assert_allclose(pixels, with_torch, atol=1e-4)


@pytest.mark.parametrize("name, message", [("g.txt", "must end in .onnx"), ("dir.onnx", "is a directory")])
def test_onnx_bad_output_is_one_line(tiny_weights, tmp_path, capsys, name, message):
    (tmp_path / "dir.onnx").mkdir()
    assert cli.main(["export-onnx", "--weights", str(tiny_weights), "--out", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_app_command_serves_the_packaged_app(tiny_weights, tmp_path):
    import _serving as serving

    port = free_port()
    env = {**os.environ, "INKDIGITS_WEIGHTS": str(tiny_weights), "STREAMLIT_SERVER_HEADLESS": "true"}
    proc = serving.start([sys.executable, "-m", "inkdigits", "app", "--port", str(port), "--address", "127.0.0.1"],
                         port, tmp_path / "app.log", env=env, cwd=tmp_path, timeout=60)  # fmt: skip
    serving.stop(proc)
