"""export_all and `python -m attnrec_tf.export`: report.json, versions, user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from attnrec_tf.export.__main__ import main
from attnrec_tf.export.tflite import KINDS, artifact_name

ARTIFACTS = ["saved_model", *(artifact_name(k) for k in KINDS)]


def test_report_json_gains_metrics_artifacts_and_export(exported_run, trained_run):
    on_disk = json.loads((trained_run.root / "report.json").read_text())
    assert on_disk["metrics"].keys() >= {"keras", "keras_window", *ARTIFACTS}
    for name in ARTIFACTS:
        artifact = on_disk["artifacts"][name]
        assert {"path", "bytes", "latency_ms_p50"} <= set(artifact)
        assert Path(artifact["path"]).exists() and artifact["bytes"] > 0
    assert on_disk["artifacts"]["keras"]["path"].endswith("model.keras")  # kept
    assert on_disk["metrics"]["keras"]["mrr@10"] <= on_disk["metrics"]["keras"]["mrr"]
    export = on_disk["export"]
    assert export["top_k"] == 10 and export["android"]["kind"] in KINDS
    assert export["history_length"] == 512 and export["max_len"] == 50
    assert "last 512" in export["notes"]["keras_window"]
    assert on_disk["artifacts"]["saved_model"]["version"] == 1
    assert (trained_run.root / "tflite" / "attnrec_int8.tflite").exists()


def test_cli_export_of_a_copied_run_and_a_second_version(trained_run, tmp_path, capsys):
    run = trained_run.copy_inputs(tmp_path / "run")
    argv = ["--output-dir", str(run), "--tflite", "float32", "--top-k", "5"]
    assert main([*argv, "--history-length", "64"]) == 0
    printed = capsys.readouterr().out
    assert "tflite_float32" in printed and "NDCG@10" in printed
    report = json.loads((run / "report.json").read_text())
    assert report["export"]["history_length"] == 64
    assert report["export"]["android"]["kind"] == "float32"  # dynamic int8 was not asked for
    assert report["export"]["android"]["config"]["inputs"][0]["inputLength"] == 64
    assert report["export"]["android"]["tensors"]["inputs"]["history"]["shape"] == [64]
    assert "tflite_int8" not in report["artifacts"]
    assert report["metrics"]["tflite_float32"].keys() >= {"hr@5", "ndcg@5", "mrr@5"}
    first = run / "saved_model" / "attnrec" / "1" / "saved_model.pb"
    before = first.read_bytes()

    assert (
        main(
            ["--output-dir", str(run), "--tflite", "float32", "--quiet", "--model-name", "attnrec"]
        )
        == 0
    )
    assert sorted(p.name for p in (run / "saved_model" / "attnrec").iterdir()) == ["1", "2"]
    assert first.read_bytes() == before
    assert json.loads((run / "report.json").read_text())["artifacts"]["saved_model"]["version"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--output-dir", "{tmp}/missing"], "--output-dir"),
        (["--output-dir", "{tmp}"], "not found"),
        (["--output-dir", "{run}", "--tflite", "float32,int4"], "--tflite"),
        (["--output-dir", "{run}", "--top-k", "0"], "--top-k"),
        (["--output-dir", "{run}", "--history-length", "49"], "--history-length"),
        (["--output-dir", "{run}", "--model-name", "../x"], "--model-name"),
        (["--output-dir", "{run}", "--checkpoint", "{tmp}/nope.keras"], "nope.keras"),
    ],
)
def test_cli_user_errors_print_one_line_and_exit_2(trained_run, tmp_path, capsys, args, message):
    run = trained_run.copy_inputs(tmp_path / "run")
    (tmp_path / "vocabulary.json").write_text((run / "vocabulary.json").read_text())
    argv = [a.format(tmp=tmp_path, run=run) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err
    assert not (run / "saved_model").exists()  # nothing written on a user error


def test_damaged_split_is_a_user_error(trained_run, tmp_path, capsys):
    run = trained_run.copy_inputs(tmp_path / "run")
    (run / "split.npz").write_bytes(b"not a zip file")
    assert main(["--output-dir", str(run)]) == 2
    assert "split.npz: cannot read it" in capsys.readouterr().err


def test_module_help_runs():
    done = subprocess.run(
        [sys.executable, "-m", "attnrec_tf.export", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    flags = ("--output-dir", "--checkpoint", "--model-name", "--top-k", "--tflite")
    for flag in (*flags, "--history-length"):
        assert flag in done.stdout
