"""A run without LiteRT: one line naming the install command, the rest of the run kept.

LiteRT (`ai-edge-litert`) is a dependency of the package, but someone may install with
`pip install --no-deps` or remove it. Each case runs `attnrec_tf.train.main` in a fresh process
with `ai_edge_litert` blocked from import (`sys.modules[...] = None`), on a tiny synthetic run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from attnrec_tf.cli import NO_TENSORFLOW
from attnrec_tf.errors import DependencyError, MissingDependencyError

BLOCK_LITERT = (
    "import sys; sys.modules['ai_edge_litert'] = None; "
    "from attnrec_tf import train; sys.exit(train.main(sys.argv[1:]))"
)
TINY = [
    "--data", "synthetic:num_users=60,num_items=40,num_interests=4,mean_length=12",
    "--epochs", "1", "--max-len", "8", "--embedding-dim", "8", "--attention-units", "4",
    "--batch-size", "64", "--sampled-negatives", "0", "--verbose", "0", "--no-jit-compile",
]  # fmt: skip
INSTALL = "LiteRT is not installed (pip install ai-edge-litert)"


def _train_without_litert(out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_LITERT, *TINY, "--output-dir", str(out), *flags],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _check_kept(out: Path) -> dict:
    """model.keras, the SavedModel and report.json with the Keras and SavedModel metrics."""
    assert (out / "model.keras").is_file()
    assert list((out / "saved_model" / "attnrec").glob("*/saved_model.pb"))
    assert not (out / "tflite").exists() and not (out / "android_demo_assets").exists()
    report = json.loads((out / "report.json").read_text())
    for name in ("keras", "saved_model"):
        assert 0.0 <= report["metrics"][name]["ndcg@10"] <= 1.0
    assert not [name for name in report["metrics"] if name.startswith("tflite_")]
    return report


def test_default_run_skips_the_tflite_files_with_one_line(tmp_path: Path) -> None:
    result = _train_without_litert(tmp_path / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "LiteRT" in line]
    assert lines == [f"export: skipped the .tflite files and Android assets: {INSTALL}"]
    assert "Traceback" not in result.stderr
    report = _check_kept(tmp_path / "run")
    assert report["export"]["skipped"]["tflite"] == INSTALL
    assert report["export"]["tflite_kinds"] == []


@pytest.mark.parametrize("flag", ["--tflite=float32", "--tflite=float32,int8"])
def test_explicit_tflite_fails_after_keeping_the_run(tmp_path: Path, flag: str) -> None:
    result = _train_without_litert(tmp_path / "run", flag)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "LiteRT" in line]
    assert lines == [f"error: {flag}: {INSTALL}".replace("=", " ", 1)]
    assert "Traceback" not in result.stderr
    _check_kept(tmp_path / "run")


def test_litert_helper_tells_a_missing_package_from_a_broken_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("ai_edge_litert")
    from attnrec_tf.export import litert, tflite

    assert litert.litert_missing() is None
    monkeypatch.setitem(sys.modules, "ai_edge_litert.tools.flatbuffer_utils", None)
    with pytest.raises(DependencyError, match="installed but ai_edge_litert.tools"):
        tflite.list_ops(b"")
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    with pytest.raises(MissingDependencyError) as raised:
        litert.LiteRTRecommender(b"")
    assert str(raised.value) == INSTALL
    assert str(litert.litert_missing()) == INSTALL


def test_a_run_without_tensorflow_says_how_to_install_it_in_one_line(tmp_path: Path) -> None:
    block = BLOCK_LITERT.replace("'ai_edge_litert'", "'tensorflow'")
    result = subprocess.run(
        [sys.executable, "-c", block, *TINY, "--output-dir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [f"error: {NO_TENSORFLOW}"]
