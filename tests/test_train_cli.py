"""The command line: every user error is one line naming the file, line or flag, exit 2."""

import json
import subprocess
import sys

import pytest

from attnrec_tf import train


def _run(argv, capsys):
    status = train.main(argv)
    captured = capsys.readouterr()
    return status, captured.err.strip()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "--epochs must be a positive integer"),
        (["--batch-size", "-1"], "--batch-size must be a positive integer"),
        (["--max-len", "0"], "--max-len must be a positive integer"),
        (["--embedding-dim", "0"], "--embedding-dim must be a positive integer"),
        (["--learning-rate", "0"], "--learning-rate must be positive"),
        (["--preset", "huge"], "--preset must be one of"),
        (["--sampled-negatives", "-1"], "--sampled-negatives must be >= 0"),
        (["--data", "/nonexistent/file.csv"], "/nonexistent/file.csv"),
    ],
)
def test_bad_flags(argv, message, capsys, tmp_path):
    status, err = _run([*argv, "--output-dir", str(tmp_path / "out")], capsys)
    assert status == 2
    assert err.startswith("error: ")
    assert message in err
    assert len(err.splitlines()) == 1


def test_malformed_row_names_file_and_line(capsys, tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\n1,10,100\n2,11\n")
    status, err = _run(["--data", str(path), "--output-dir", str(tmp_path / "o")], capsys)
    assert status == 2
    assert "log.csv" in err and "line 3" in err


def test_missing_column_names_the_flag(capsys, tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("uid,item_id,timestamp\n1,10,100\n")
    status, err = _run(["--data", str(path), "--output-dir", str(tmp_path / "o")], capsys)
    assert status == 2
    assert "user_id" in err and "--user-col" in err


def test_empty_file(capsys, tmp_path):
    path = tmp_path / "empty.tsv"
    path.write_text("")
    status, err = _run(["--data", str(path), "--output-dir", str(tmp_path / "o")], capsys)
    assert status == 2
    assert "empty.tsv" in err


def test_folder_without_dataset(capsys, tmp_path):
    folder = tmp_path / "nothing_here"
    folder.mkdir()
    (folder / "notes.txt").write_text("hi")
    status, err = _run(["--data", str(folder), "--output-dir", str(tmp_path / "o")], capsys)
    assert status == 2
    assert "nothing_here" in err


def test_no_traceback_in_a_real_process(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("user_id,item_id,timestamp\n1,10,abc\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "attnrec_tf.train",
            "--data",
            str(path),
            "--output-dir",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "bad.csv" in result.stderr and "line 2" in result.stderr


def test_help_lists_every_flag_with_defaults():
    result = subprocess.run(
        [sys.executable, "-m", "attnrec_tf.train", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0
    for name in (
        "--data",
        "--output-dir",
        "--epochs",
        "--batch-size",
        "--max-len",
        "--embedding-dim",
        "--learning-rate",
        "--seed",
        "--variant",
        "--preset",
    ):
        assert name in result.stdout


def _tiny_log(tmp_path):
    """A string-id TSV log: 30 users x 8 steps over 12 items (`uid`, `sku`, `ts`)."""
    rows = ["uid\tsku\tts"]
    for user in range(30):
        for step in range(8):
            rows.append(f"u{user}\titem-{(user + step) % 12}\t{step}")
    path = tmp_path / "log.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_generic_file_trains_end_to_end(tmp_path, capsys):
    """A tiny string-id log goes through the whole run (without export) and writes the report."""
    path = _tiny_log(tmp_path)
    out = tmp_path / "run"
    status = train.main(
        [
            "--data",
            str(path),
            "--user-col",
            "uid",
            "--item-col",
            "sku",
            "--time-col",
            "ts",
            "--output-dir",
            str(out),
            "--epochs",
            "2",
            "--max-len",
            "5",
            "--embedding-dim",
            "8",
            "--attention-units",
            "4",
            "--no-export",
            "--min-item-interactions",
            "1",
            "--verbose",
            "0",
            "--no-jit-compile",
        ]
    )
    assert status == 0
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"]["num_users"] == 30
    assert report["dataset"]["num_items"] == 12
    assert report["protocol"] == {
        "split": "leave-one-out",
        "ranking": "full",
        "exclude_history": True,
        "eval_users": 30,
    }
    for key in ("hr@10", "ndcg@10", "mrr"):
        assert 0.0 <= report["metrics"]["keras"][key] <= 1.0
        assert key in report["metrics"]["popularity"]
    assert report["train_seconds"] > 0 and report["examples_per_second"] > 0
    assert report["training"]["cosine_end"] is None  # the default: a constant rate
    assert report["training"]["final_learning_rate"] == pytest.approx(3e-3)
    assert (out / "model.keras").exists() and (out / "vocabulary.json").exists()


def test_unknown_tflite_kind_names_the_flag(capsys, tmp_path):
    status, err = _run(["--tflite", "float32,int4", "--output-dir", str(tmp_path / "o")], capsys)
    assert status == 2
    assert "--tflite" in err and "int4" in err


def test_eval_users_must_not_be_negative(capsys, tmp_path):
    status, err = _run(["--eval-users", "-2", "--output-dir", str(tmp_path / "o")], capsys)
    assert status == 2
    assert "--eval-users must be >= 0" in err


def test_each_phase_peak_starts_afresh():
    import os

    import numpy as np

    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("no /proc/self/clear_refs: the peaks stay cumulative here")
    block = np.ones(25_000_000)  # 200 MB, touched
    del block
    from attnrec_tf.peak_memory import peak_rss_mb, reset_peak_rss

    before = peak_rss_mb()
    reset_peak_rss()
    assert peak_rss_mb() < before - 150  # the freed block is not in the new peak


def test_the_export_command_returns_freed_tensor_memory_unless_told_otherwise(monkeypatch):
    import os

    from attnrec_tf import cli

    monkeypatch.delenv("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", raising=False)
    cli.release_freed_tensor_memory()
    assert os.environ["TF_ONEDNN_USE_SYSTEM_ALLOCATOR"] == "1"
    monkeypatch.setenv("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "0")
    cli.release_freed_tensor_memory()
    assert os.environ["TF_ONEDNN_USE_SYSTEM_ALLOCATOR"] == "0"


def test_per_epoch_validation_sample_then_every_user_at_the_end(tmp_path, capsys):
    """--validation-users 10: the epochs validate 10 users, the best model all 30 at the end;
    the report says so, and which loss --loss auto chose for 12 items."""
    path = _tiny_log(tmp_path)
    out = tmp_path / "run"
    argv = ["--data", str(path), "--user-col", "uid", "--item-col", "sku", "--time-col", "ts"]
    argv += ["--output-dir", str(out), "--epochs", "2", "--max-len", "5", "--embedding-dim", "8"]
    argv += ["--attention-units", "4", "--no-export", "--min-item-interactions", "1"]
    argv += ["--verbose", "0", "--validation-users", "10"]
    assert train.main(argv) == 0
    printed = capsys.readouterr().out
    assert "val full-ranking on 10 of 30 users" in printed
    assert "loss: softmax (--loss auto: 12 items <= 20,000, so softmax)" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["validation"]["users"] == {"per_epoch": 10, "of": 30}
    assert report["validation"]["keras"]["num_users"] == 30  # the final, full validation
    assert report["loss_choice"]["used"] == report["config"]["loss"] == "softmax"
    assert report["steps_per_epoch"] == 1


def test_validation_users_must_not_be_negative(capsys, tmp_path):
    status, err = _run(["--validation-users", "-1", "--output-dir", str(tmp_path / "o")], capsys)
    assert status == 2
    assert "--validation-users must be >= 0" in err


def test_a_large_run_from_the_command_line_exports_in_a_fresh_process(tmp_path, monkeypatch):
    """Above `EXEC_EXPORT_FROM_ITEMS` the command line ends training by exec'ing the export.

    The exec is captured (it would replace pytest), then its command runs for real: the
    exported process finishes the run folder (SavedModel, TFLite, its own peak and seconds).
    """
    from attnrec_tf.run_dir import RunDir
    from attnrec_tf.training import run as run_module
    from attnrec_tf.training.fit import training_state_path

    captured = []

    def fake_execv(path, command):
        captured.append(command)
        raise SystemExit(0)

    monkeypatch.setattr(run_module, "EXEC_EXPORT_FROM_ITEMS", 5)
    monkeypatch.setattr(run_module.os, "execv", fake_execv)
    out = tmp_path / "run"
    argv = [
        "--data", str(_tiny_log(tmp_path)), "--user-col", "uid", "--item-col", "sku",
        "--time-col", "ts", "--output-dir", str(out), "--epochs", "1", "--max-len", "5",
        "--embedding-dim", "8", "--min-item-interactions", "1", "--verbose", "0",
        "--tflite", "float32", "--top-k", "7",
    ]  # fmt: skip
    with pytest.raises(SystemExit):
        train._run(vars(train.build_parser().parse_args(argv)), may_exec_export=True)
    (command,) = captured
    assert command[:3] == [sys.executable, "-m", "attnrec_tf.export"]
    assert command[3:] == [
        "--output-dir", str(out), "--model-name", "attnrec", "--top-k", "7", "--tflite", "float32"
    ]  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert "saved_model" not in report["metrics"]  # not exported in the training process
    assert not training_state_path(RunDir(out)).exists()

    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert {"saved_model", "tflite_float32"} <= set(report["metrics"])
    assert report["peak_rss_mb"]["export"] > 0 and report["export_seconds"] > 0
    assert report["peak_rss_mb"]["train"] > 0  # the training process's entries are kept
