"""Every benchmark script runs with --dry-run (a few steps on the synthetic dataset), so none can rot."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("[!_]*.py"))  # _x.py: helpers


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
