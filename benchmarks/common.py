"""What the suites share: the checkout, where results go, one training run, one table cell.

Every other bench module may import this one; it imports none of them (no import cycle).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from attnrec_tf.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[1]
"""The source checkout: the folder that holds `benchmarks/` and `attnrec_tf/`."""
RESULTS_JSON = Path("benchmarks") / "results.json"
"""Every result of the bench, under `--results` (default `ROOT`); the tables are made from it."""
RESULTS_MD = Path("BENCHMARKS.md")
"""The result tables, rendered from `RESULTS_JSON`, under `--results`."""
PLOTS = Path("benchmarks")
"""Folder of the plots that BENCHMARKS.md shows, under `--results`."""


def load_results(results_dir: Path) -> dict[str, Any]:
    """The results recorded under `results_dir` (`RESULTS_JSON`), or an empty set of runs."""
    path = results_dir / RESULTS_JSON
    return json.loads(path.read_text()) if path.exists() else {"runs": {}}


def run_train(
    name: str, argv: list[str], out_root: Path, *, source: Path | None = None
) -> dict[str, Any]:
    """Runs one training process and returns its report with wall time and peak memory.

    `source` runs the `attnrec_tf` of another checkout (its folder goes first on PYTHONPATH).
    """
    output = (out_root / name).resolve()
    command = [sys.executable, "-m", "attnrec_tf.train", "--output-dir", str(output), *argv]
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")])
    print(f"[bench] {name}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    log = open(out_root / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115
    with log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=source or ROOT, env=env
        )
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"[bench] {name} failed; see {out_root / (name + '.log')}")
    report = json.loads(RunDir(output).report.read_text())
    report["bench"] = {
        "name": name,
        "command": "python -m attnrec_tf.train " + " ".join(argv),
        "wall_seconds": wall,
        # The run resets its high-water mark at each phase (attnrec_tf/training/run.py), so
        # the process's own figure at exit may be the last phase's: the peak is the largest.
        "peak_rss_mb": max(usage.ru_maxrss / 1024, *report.get("peak_rss_mb", {}).values()),
    }
    print(f"[bench] {name}: done in {wall:.0f}s", flush=True)
    return report


def checkout_problem(root: Path | None = None) -> str | None:
    """Why `root` (default `ROOT`) is not a source checkout of attnrec_tf, or None if it is one.

    The bench needs one: it writes BENCHMARKS.md and `benchmarks/results.json` there, reads
    `../shared/data` beside it and starts its training processes in it.
    """
    root = ROOT if root is None else root
    if (root / "pyproject.toml").is_file() and (root / "attnrec_tf").is_dir():
        return None
    return (
        f"python -m benchmarks runs from a source checkout of attnrec_tf, and {root} "
        "(where this benchmarks folder lies) is not one; clone the repository and run "
        "`make bench` in it"
    )


def fmt(value: Any, digits: int = 4) -> str:
    """A table cell: `-` for None, floats to `digits` places."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def mean_sd(values: list[float]) -> str:
    """A table cell of seeds: `mean ± sd` to 4 places, or the one value when there is one."""
    if len(values) < 2:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"
