"""report.json and the table printed at the end of a run.

Example:

>>> print(format_table({"keras": {"hr@10": 0.5, "ndcg@10": 0.25, "mrr": 0.2}}))
model  HR@10   NDCG@10 MRR
keras  0.5000  0.2500  0.2000
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from attnrec_tf import atomic

COLUMNS = (("hr@10", "HR@10"), ("ndcg@10", "NDCG@10"), ("mrr", "MRR"))

BY_HISTORY_LENGTH = "by_history_length"
"""report.json's `metrics` entry of `evaluate.evaluate_by_history_length`."""

STANDARD_ERROR = "standard_error"
"""report.json's `metrics` entry of `metrics.standard_errors` (the Keras model's test ranks)."""

SUMMARIES = (BY_HISTORY_LENGTH, STANDARD_ERROR)
"""Entries of report.json's `metrics` that are not one model's or artifact's metrics."""


def artifact_metrics(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """report.json's `metrics` without `SUMMARIES`: one metric dict per model or artifact.

    >>> list(artifact_metrics({"keras": {}, "by_history_length": {}, "popularity": {}}))
    ['keras', 'popularity']
    """
    return {name: values for name, values in metrics.items() if name not in SUMMARIES}


def format_table(metrics: dict[str, Any]) -> str:
    """One row per model/artifact with HR@10, NDCG@10 and MRR (`SUMMARIES` are left out)."""
    metrics = artifact_metrics(metrics)
    width = max([len("model"), *(len(name) for name in metrics)]) + 2
    lines = ["model".ljust(width) + "".join(title.ljust(8) for _, title in COLUMNS).rstrip()]
    for name, values in metrics.items():
        cells = []
        for key, _ in COLUMNS:
            value = values.get(key)
            cells.append(("-" if value is None else f"{value:.4f}").ljust(8))
        lines.append(name.ljust(width) + "".join(cells).rstrip())
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Cores, CPU model and library versions, so figures can be read with their machine."""
    import os

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
    }
    try:
        import keras
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["keras"] = keras.__version__
    except ImportError:  # pragma: no cover
        pass
    try:
        from importlib.metadata import version

        info["ai_edge_litert"] = version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - optional package
        info["ai_edge_litert"] = None
    return info


def save(path: Path, report: dict[str, Any]) -> None:
    """Writes report.json atomically."""
    atomic.write_json(path, report)


def load(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
