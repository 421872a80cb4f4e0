"""Same seed and data -> same numbers on CPU; report.json says which seed, libraries and data.

Tolerance: `TOLERANCE` (1e-6 absolute) on every metric; measured on CPU: identical to the last
bit across processes (`keras.utils.set_random_seed` + `enable_op_determinism`, and a data order
that depends on (seed, epoch) only). GPU runs leave op determinism off (some GPU kernels have no
deterministic version) and are not covered by this guarantee.
"""

from __future__ import annotations

import hashlib

import pytest

from attnrec_tf.data.fingerprint import data_sha256, folder_sha256, synthetic_sha256
from attnrec_tf.data.interactions import read_interaction_file
from tests.reliability.conftest import report, run_train

TOLERANCE = 1e-6


def test_two_processes_with_the_same_seed_give_the_same_metrics(reference_run, tmp_path):
    second = tmp_path / "again"
    result = run_train(second)
    assert result.returncode == 0, result.stderr[-3000:]
    got, want = report(second), report(reference_run)
    for model in ("keras", "popularity"):
        for key, value in want["metrics"][model].items():
            assert got["metrics"][model][key] == pytest.approx(value, abs=TOLERANCE), key
    assert [r["loss"] for r in got["history"]] == pytest.approx(
        [r["loss"] for r in want["history"]], abs=TOLERANCE
    )


def test_report_records_seed_versions_and_data_hash(reference_run):
    run = report(reference_run)
    assert run["config"]["seed"] == 0 and run["training"]["seed"] == 0
    assert run["training"]["op_determinism"] is True
    assert run["training"]["distribution"] == {"mode": "none", "num_workers": 1,
                                               "num_replicas": 1}  # fmt: skip
    for library in ("tensorflow", "keras", "ai_edge_litert"):
        assert run["machine"][library], library
    assert run["dataset"]["sha256_of"] == "generator parameters"
    assert run["dataset"]["sha256"] == synthetic_sha256({"seed": 0})


def test_synthetic_hash_is_of_the_full_parameters():
    assert synthetic_sha256({"seed": 0}) == synthetic_sha256({"seed": 0, "num_users": 2000})
    assert synthetic_sha256({"seed": 0}) != synthetic_sha256({"seed": 1})
    assert synthetic_sha256({"seed": 0}) != synthetic_sha256({"seed": 0, "num_items": 601})


def test_file_hash_is_of_its_bytes(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\n1,10,100\n1,11,101\n")
    entry = data_sha256(read_interaction_file(path))
    assert entry == {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                     "sha256_of": "file bytes"}  # fmt: skip


def test_folder_hash_covers_names_and_contents_not_order_or_hidden_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, names in ((a, ("ratings.dat", "movies.dat")), (b, ("movies.dat", "ratings.dat"))):
        folder.mkdir()
        for name in names:  # created in another order
            (folder / name).write_text(f"contents of {name}\n")
    assert folder_sha256(a) == folder_sha256(b)
    (b / ".download-complete").write_text("marker")
    assert folder_sha256(a) == folder_sha256(b)
    (b / "movies.dat").write_text("changed\n")
    assert folder_sha256(a) != folder_sha256(b)
    before = folder_sha256(a)
    (a / "movies.dat").rename(a / "films.dat")
    assert folder_sha256(a) != before
