"""Checks the folder a `make train` run (or any default training run) leaves behind.

    python3 .ci/check_train_run.py [RUN_DIR] [--readme README.md]   # default: runs/latest

Standard library only, so any Python runs it. Fails (exit 1, one line per problem) unless
RUN_DIR/report.json holds test metrics for `keras`, `saved_model` and every `.tflite` kind, and
the three plots are non-empty PNG files. Only the artifacts of ARTIFACTS are read from `metrics`,
so its entries that are not one artifact's metrics (`by_history_length`) are skipped. With
`--readme`, the README's table of `make train` must also show the run's `keras`, `popularity` and
`saved_model` rows as the run printed them (the TensorFlow rows: the `.tflite` rows come from
LiteRT's CPU kernels, which may differ in the last digit between processors).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ARTIFACTS = (
    "keras",
    "saved_model",
    "tflite_float32",
    "tflite_float16",
    "tflite_dynamic_int8",
    "tflite_int8",
)
PLOTS = ("training_curves.png", "attention_heatmap.png", "by_history_length.png")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
README_ROWS = ("keras", "popularity", "saved_model")
COLUMNS = ("hr@10", "ndcg@10", "mrr")


def problems(run: Path) -> list[str]:
    """What is missing or wrong in the run folder `run` (empty when it is complete)."""
    try:
        report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return [f"{run / 'report.json'}: cannot read it ({error})"]
    found = []
    metrics = report.get("metrics", {})
    for name in ARTIFACTS:
        values = metrics.get(name) or {}
        if not isinstance(values.get("ndcg@10"), float) or not values.get("num_users"):
            found.append(f"report.json: metrics.{name} has no ndcg@10 / num_users")
    for name in PLOTS:
        path = run / name
        head = path.read_bytes()[:8] if path.is_file() else b""
        if head != PNG_SIGNATURE or path.stat().st_size <= len(PNG_SIGNATURE):
            found.append(f"{path}: missing, empty or not a PNG")
    return found


def readme_problems(run: Path, readme: Path) -> list[str]:
    """Rows of README's printed table that differ from the run's report (empty when equal)."""
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    shown = {}
    for line in readme.read_text(encoding="utf-8").splitlines():
        cells = line.split()
        if cells and cells[0] in README_ROWS and len(cells) == 4:
            shown.setdefault(cells[0], cells[1:])
    found = []
    for name in README_ROWS:
        values = report["metrics"].get(name, {})
        printed = ["-" if values.get(key) is None else f"{values[key]:.4f}" for key in COLUMNS]
        if shown.get(name) != printed:
            found.append(
                f"{readme}: the row {name} shows {shown.get(name)}, the run printed {printed}"
            )
    return found


def main(argv: list[str]) -> int:
    """Prints one line per problem (or a summary) and returns the exit status."""
    readme = None
    if "--readme" in argv:
        at = argv.index("--readme")
        readme = Path(argv[at + 1])
        argv = argv[:at] + argv[at + 2 :]
    run = Path(argv[0]) if argv else Path("runs/latest")
    found = problems(run)
    if readme is not None and not found:
        found = readme_problems(run, readme)
    for line in found:
        print(f"check_train_run: {line}")
    if found:
        return 1
    print(f"check_train_run: {run}: metrics for {', '.join(ARTIFACTS)}; plots {', '.join(PLOTS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
