"""Training under tf.distribute: two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy,
TF_CONFIG) and two logical CPU devices in one process (MirroredStrategy) end with the metrics of
a single-device run, and only the chief writes files.

Tolerance: `TOLERANCE` (0.002 absolute on HR@10, NDCG@10, MRR; measured: at most 4e-4 on the
validation rows, 3e-5 on the test metrics). The global batch is the same and every step sees
the same examples (the dataset is sharded per worker after each global batch is split), so the
math is the same up to (1) the order of float sums in the gradient all-reduce, and (2) the loss
normalisation: `AttentionRecommender.compute_loss` averages over the positions of its own
replica, so a position weighs 1/(replicas x local positions) rather than 1/(global positions),
and the gradient is the sum of the replicas' gradients; Adam is almost invariant to that scale.
Dropout is 0 here: each replica draws its own masks, so with dropout the runs differ as two seeds
would (about 0.002 NDCG@10 on this data), not by float noise.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import REPO, child_env, report, run_train, train_command

TOLERANCE = 0.002
SETTINGS = ("--epochs", "2", "--dropout", "0")
KEYS = ("hr@10", "ndcg@10", "mrr")
MIRRORED = r"""
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from attnrec_tf import train
sys.exit(train.main(sys.argv[1:]))
"""


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def single_device(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("single") / "run"
    result = run_train(output, *SETTINGS)
    assert result.returncode == 0, result.stderr[-3000:]
    return output


def assert_close(run: Path, reference: Path) -> None:
    got, want = report(run), report(reference)
    for key in KEYS:
        assert got["metrics"]["keras"][key] == pytest.approx(
            want["metrics"]["keras"][key], abs=TOLERANCE
        ), key
    for row, expected in zip(got["history"], want["history"], strict=True):
        for key in KEYS:
            assert row[key] == pytest.approx(expected[key], abs=TOLERANCE), (row["epoch"], key)


def _start_workers(outputs: list[Path], *extra: str) -> list[subprocess.Popen]:
    ports = _free_ports(len(outputs))
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return [
        subprocess.Popen(
            train_command(output, *SETTINGS, *extra), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, cwd=REPO,
            env=child_env(TF_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": i}}
            )),
        )
        for i, output in enumerate(outputs)
    ]  # fmt: skip


def _finish(workers: list[subprocess.Popen]) -> list[str]:
    logs = []
    for worker in workers:
        try:
            logs.append(worker.communicate(timeout=300)[0])
        except subprocess.TimeoutExpired:
            for w in workers:
                w.kill()
            raise
    for worker, log in zip(workers, logs, strict=True):
        assert worker.returncode == 0, log[-3000:]
        assert "Traceback" not in log
    return logs


def test_two_workers_on_localhost_match_one_worker(single_device, tmp_path):
    outputs = [tmp_path / "chief", tmp_path / "worker1"]
    logs = _finish(_start_workers(outputs))
    assert "worker 1: training done" in logs[1]

    chief = report(outputs[0])
    assert chief["training"]["distribution"] == {"mode": "multi-worker", "num_workers": 2,
                                                 "num_replicas": 2}  # fmt: skip
    assert chief["training"]["test_ranked_by_workers"] == 2  # each ranked half the users
    assert_close(outputs[0], single_device)  # with the chief's best weights on both
    assert list(outputs[1].rglob("*")) == []  # only the chief writes


def test_two_workers_stop_together_at_the_time_budget(tmp_path):
    """Each worker's clock says the budget is spent; they stop at the chief's plan, together
    (a worker that went on alone would wait forever in the next all-reduce)."""
    outputs = [tmp_path / "chief", tmp_path / "worker1"]
    logs = _finish(_start_workers(outputs, "--epochs", "5", "--time-budget", "1"))
    assert all("time budget:" in log for log in logs)
    assert report(outputs[0])["epochs_run"] == 1


def test_mirrored_strategy_on_two_local_devices_matches_one_device(single_device, tmp_path):
    output = tmp_path / "mirrored"
    argv = train_command(output, *SETTINGS, "--distribute", "mirrored")[4:]  # after "-m module"
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED, *argv], capture_output=True, text=True, timeout=300,
        env=child_env(), cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert report(output)["training"]["distribution"] == {"mode": "mirrored", "num_workers": 1,
                                                          "num_replicas": 2}  # fmt: skip
    assert_close(output, single_device)


@pytest.mark.slow
def test_two_workers_killed_mid_epoch_resume_from_the_shared_state(tmp_path):
    """Both workers SIGKILLed after a mid-epoch backup, restarted: the uninterrupted metrics."""
    import numpy as np

    every = ("--backup-every-steps", "4")
    reference = tmp_path / "reference"
    _finish(_start_workers([reference, reference], *every))
    shared = tmp_path / "shared"  # one --output-dir on storage both workers see
    workers = _start_workers([shared, shared], *every)
    state = shared / "checkpoints" / "training_state.npz"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with np.load(state) as data:
                meta = json.loads(str(data["meta"]))
            if meta["epoch"] >= 1 and meta["batch"] > 0:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    for worker in workers:
        worker.kill()
        worker.communicate()
    logs = _finish(_start_workers([shared, shared], *every))
    assert all(f"at epoch {meta['epoch'] + 1}, batch {meta['batch']}" in log for log in logs)
    assert report(shared)["metrics"]["keras"] == report(reference)["metrics"]["keras"]
