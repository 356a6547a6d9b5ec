"""What the browser tests and benchmarks share: starting a Streamlit server and waiting for it, and the flags
Debian's Chromium needs headless in a container. (A leading underscore: not a benchmark of its own.)"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]  # fmt: skip


def streamlit_command(port: int, app: Path = ROOT / "app.py") -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true", "--server.port", str(port),
            "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]  # fmt: skip


def start(command: list[str], port: int, log: Path, env: dict | None = None, cwd: Path = ROOT,
          timeout: float = 90) -> subprocess.Popen:  # fmt: skip
    """Run ``command`` (a server on ``port``), output to ``log``; return once /_stcore/health answers "ok".
    Raises RuntimeError with the log's end if the server exits or does not answer in ``timeout`` seconds."""
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            stop(proc)
            why = "exited" if proc.returncode is not None else f"did not answer in {timeout:.0f} s"
            raise RuntimeError(f"the server {why}: {Path(log).read_text()[-2000:]}")
        time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
