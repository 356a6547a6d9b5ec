"""Every benchmark script runs with --dry-run (a few steps on the synthetic dataset), so none can rot."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
BENCHMARKS = sorted(BENCHMARK_DIR.glob("[!_]*.py"))  # _x.py: helpers


def test_there_are_benchmarks():
    assert len(BENCHMARKS) >= 12


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_dry_run(script, data_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(script), "--dry-run"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    table = [line for line in out.stdout.splitlines() if line.startswith("|")]
    if table:  # a Markdown table: a header, its rule, at least one row, every row as wide as the header
        assert len(table) >= 3 and set(table[1]) <= set("|-: "), out.stdout
        assert all(row.count("|") == table[0].count("|") for row in table), out.stdout
    else:  # the scripts that make files say which
        written = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("wrote ")]
        assert written and all((tmp_path / w).exists() or Path(w).exists() for w in written), out.stdout


def test_standing_stats_are_the_averaged_weights_own(tmp_path):
    """quality.py --standing-stats: G's first BatchNorm ends with the mean and variance of its own input over the
    batches it was shown, and the network is left in eval mode."""
    import importlib.util

    import torch

    from inkdigits.config import ModelConfig
    from inkdigits.models import Generator, lookup

    spec = importlib.util.spec_from_file_location("quality", BENCHMARK_DIR / "quality.py")
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    net = Generator(ModelConfig(g_width=4, latent_dim=8, embed_dim=4, num_classes=3, image_size=8))
    quality.standing_stats(net, 1, num_classes=3, latent_dim=8, seed=5)
    gen = torch.Generator().manual_seed(5)  # the same batch again
    z, y = torch.randn(64, 8, generator=gen), torch.randint(0, 3, (64,), generator=gen)
    with torch.no_grad():
        h = net.fc(torch.cat([z, lookup(net.embed, y)], dim=1)).view(64, net.c7, net.base, net.base)
    assert not net.training
    torch.testing.assert_close(net.bn7.bn.running_mean, h.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(net.bn7.bn.running_var, h.var(dim=(0, 2, 3)))
