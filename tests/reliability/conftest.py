"""Shared helpers of the reliability tests: the training command as a subprocess, and one
uninterrupted reference run that the resume, determinism and export-crash tests compare with.

The run is small on purpose (embedded synthetic data, 2,000 users; 4 epochs of a tiny model,
32 batches per epoch, about 10 s with the TensorFlow start-up).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "--epochs", "4", "--max-len", "10", "--embedding-dim", "8", "--attention-units", "8",
    "--batch-size", "64", "--sampled-negatives", "0", "--no-export", "--verbose", "2",
]  # fmt: skip


def train_command(output: Path, *extra: str) -> list[str]:
    """`python -u -m attnrec_tf.train` on the tiny settings, writing to `output`."""
    return [sys.executable, "-u", "-m", "attnrec_tf.train", "--output-dir", str(output), *TINY,
            *extra]  # fmt: skip


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: quiet TensorFlow, the repository importable."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO), **extra)
    return env


def run_train(output: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs the training command to the end and returns the finished process."""
    return subprocess.run(
        train_command(output, *extra), capture_output=True, text=True, timeout=timeout,
        env=child_env(), cwd=REPO,
    )  # fmt: skip


def report(output: Path) -> dict[str, Any]:
    return json.loads((output / "report.json").read_text())


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run of the tiny command (no export)."""
    output = tmp_path_factory.mktemp("reference") / "run"
    result = run_train(output)
    assert result.returncode == 0, result.stderr[-3000:]
    return output
