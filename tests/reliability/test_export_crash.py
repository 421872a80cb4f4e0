"""A process killed (SIGKILL) during export leaves no partial SavedModel version or `.tflite`
where a server or an app would look: versions are all-digit folders under
`saved_model/<name>/`, models are `tflite/*.tflite`. The writes go to hidden temporaries that are
renamed into place (`attnrec_tf.atomic`, `export/saved_model.py`).

A killed process cannot clean up, so a hidden temporary may stay behind; TF Serving ignores
names that are not all digits, and `*.tflite` does not match `.<name>.tflite.<random>.tmp`.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.conftest import REPO, child_env

CHILD = r"""
import os, signal, sys
from pathlib import Path

from attnrec_tf.export import saved_model
from attnrec_tf.export.export_all import export_all
from attnrec_tf.run_dir import RunDir

root, where = Path(sys.argv[1]), sys.argv[2]

def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

if where == "tflite":  # the bytes are in the hidden temporary; the rename never happens
    real_fsync = os.fsync
    def fsync(fd):
        if ".tflite." in os.readlink(f"/proc/self/fd/{fd}"):
            print("killing in the .tflite write", flush=True)
            die()
        real_fsync(fd)
    os.fsync = fsync
else:  # the version is complete in its hidden staging folder; the rename never happens
    real_build = saved_model.build_archive
    def build_archive(*args, **kwargs):
        archive = real_build(*args, **kwargs)
        real_write = archive.write_out
        def write_out(path, verbose=False):
            real_write(path, verbose=verbose)
            print("killing before the version rename", flush=True)
            die()
        archive.write_out = write_out
        return archive
    saved_model.build_archive = build_archive
export_all(RunDir(root), tflite_kinds=["float32"], verbose=True)
print("export finished", flush=True)
"""


def _visible_versions(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir() if p.name.isdigit()) if base.is_dir() else []


@pytest.mark.parametrize("where", ["saved_model", "tflite"])
def test_kill_during_export_leaves_nothing_partial(reference_run, tmp_path, where):
    root = tmp_path / "run"
    root.mkdir()
    for name in ("model.keras", "vocabulary.json", "items.json", "split.npz", "report.json"):
        shutil.copy2(reference_run / name, root / name)
    report_before = (root / "report.json").read_bytes()

    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), where], capture_output=True, text=True,
        timeout=300, env=child_env(), cwd=REPO,
    )  # fmt: skip
    assert result.returncode == -signal.SIGKILL, result.stdout + result.stderr[-3000:]
    assert "killing" in result.stdout and "export finished" not in result.stdout

    base = root / "saved_model" / "attnrec"
    assert not list(root.glob("tflite/*.tflite"))
    assert (root / "report.json").read_bytes() == report_before  # written last, atomically
    if where == "saved_model":
        assert _visible_versions(base) == []
    else:  # the SavedModel came first and is complete
        import tensorflow as tf

        assert _visible_versions(base) == ["1"]
        loaded = tf.saved_model.load(str(base / "1"))
        assert "serving_default" in loaded.signatures
        leftovers = [p.name for p in (root / "tflite").iterdir()]
        assert leftovers and all(name.startswith(".") for name in leftovers), leftovers
