"""A killed or interrupted training run, started again with the same command, ends with the
numbers of an uninterrupted run.

Tolerance: `TOLERANCE` (1e-6, absolute) on every test metric and on every epoch's validation
metrics and loss. Measured on CPU: equal to the last bit, because op determinism is on, each
epoch's data order is a function of (seed, epoch), and every variable (weights, optimizer
moments and step, Dropout seed-generator states, the running loss) and callback state is saved.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.conftest import REPO, child_env, report, run_train, train_command

WALL_CLOCK = ("seconds", "validation_seconds", "batches")
"""History fields of how a process spent its time (`batches`: the epoch's batches that process
ran, fewer in the epoch a resumed run starts inside), not of what it learned."""
TOLERANCE = 1e-6
STATE = Path("checkpoints") / "training_state.npz"


def _start(output: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        train_command(output, *extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=child_env(), cwd=REPO,
    )  # fmt: skip


def _state(output: Path) -> dict | None:
    try:
        with np.load(output / STATE) as data:
            return json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError):
        return None


def _kill_when(process: subprocess.Popen, ready, sig: int, timeout: float = 240) -> str:
    """Reads the child's output until `ready(line)` is true, sends `sig`, returns all output."""
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    lines = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if ready(line):
                process.send_signal(sig)
                break
        lines.append(process.communicate(timeout=timeout)[0])
    finally:
        watchdog.cancel()
    return "".join(lines)


def assert_same_results(run: Path, reference: Path) -> None:
    got, want = report(run), report(reference)
    for model in ("keras", "popularity"):
        for key, value in want["metrics"][model].items():
            assert got["metrics"][model][key] == pytest.approx(value, abs=TOLERANCE), (model, key)
    assert len(got["history"]) == len(want["history"])
    for row, expected in zip(got["history"], want["history"], strict=True):
        for key, value in expected.items():
            if key in WALL_CLOCK:  # these differ from run to run; the numbers may not
                continue
            assert row[key] == pytest.approx(value, abs=TOLERANCE), (row["epoch"], key)
    assert got["best_epoch"] == want["best_epoch"]
    assert got["epochs_run"] == want["epochs_run"]


@pytest.mark.parametrize(
    "extra, expect_batch",
    [((), False), (("--backup-every-steps", "4"), True)],
    ids=["epoch-end-backups", "backups-every-4-steps"],
)
def test_sigkill_mid_epoch_then_same_command_gives_same_metrics(
    reference_run, tmp_path, extra, expect_batch
):
    output = tmp_path / "run"
    process = _start(output, *extra)
    if expect_batch:  # wait until a mid-epoch backup of epoch 3 or later is on disk

        def ready(line: str) -> bool:
            while process.poll() is None:
                meta = _state(output)
                if meta is not None and meta["epoch"] >= 2 and meta["batch"] > 0:
                    return True
                if meta is not None and meta["epoch"] >= 4:
                    return False
                time.sleep(0.005)
            return False
    else:

        def ready(line: str) -> bool:
            return line.startswith("Epoch 3/")

    log = _kill_when(process, ready, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL, log[-2000:]
    killed_at = _state(output)
    assert killed_at is not None and not killed_at["finished"], log[-2000:]
    assert (killed_at["batch"] > 0) == expect_batch, killed_at
    assert not (output / "report.json").exists()

    resumed = run_train(output, *extra)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    epoch, batch = killed_at["epoch"] + 1, killed_at["batch"]
    assert f"resuming from {output / STATE} at epoch {epoch}, batch {batch}" in resumed.stdout
    assert_same_results(output, reference_run)
    assert report(output)["training"]["resumed_from"] == [{"epoch": epoch, "batch": batch}]
    assert not (output / STATE).exists()  # a finished run leaves no state: the next starts afresh


def test_sigint_saves_state_exits_130_without_traceback_and_resumes(reference_run, tmp_path):
    output = tmp_path / "run"
    process = _start(output)
    log = _kill_when(process, lambda line: line.startswith("Epoch 2/"), signal.SIGINT)
    assert process.returncode == 130, log[-2000:]
    assert "Traceback" not in log
    assert "interrupted: training state saved " in log
    assert "run the same command again to resume" in log
    saved = _state(output)
    assert saved is not None and saved["epoch"] >= 1 and not saved["finished"]

    # The state belongs to these settings: other ones are a one-line user error.
    other = run_train(output, "--learning-rate", "0.01")
    assert other.returncode == 2
    assert other.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "other settings or data" in other.stderr and "--no-resume" in other.stderr
    assert "Traceback" not in other.stderr

    resumed = run_train(output)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout
    assert_same_results(output, reference_run)
